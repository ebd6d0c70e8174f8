//! `twin.v1.Models`: what is served and its contract.

use tonic::{Request, Response, Status};
use twin_proto::v1 as pb;
use twin_proto::v1::models_server::Models;

use crate::convert::model;
use crate::state::AppState;
use crate::status::ApiError;

/// The files of a model's directory that GetModelCard returns.
const MODEL_CARD_FILE: &str = "MODEL_CARD.md";
const ROC_PLOT_FILE: &str = "roc.svg";
const DET_PLOT_FILE: &str = "det.svg";

#[derive(Debug, Clone)]
pub struct ModelsService {
    pub state: AppState,
}

#[tonic::async_trait]
impl Models for ModelsService {
    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let models = &self.state.models;
        Ok(Response::new(pb::ListModelsResponse {
            models: models.all().iter().map(model).collect(),
            default_model: models.default_model().manifest().name.clone(),
        }))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        let requested = request.into_inner().model;
        Ok(Response::new(model(self.state.model(&requested)?)))
    }

    async fn get_model_card(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::ModelCard>, Status> {
        let requested = request.into_inner().model;
        let embedder = self.state.model(&requested)?;
        let dir = embedder.dir().to_owned();
        let name = embedder.manifest().name.clone();
        // Small files, but read off the executor all the same.
        let card = tokio::task::spawn_blocking(move || {
            let read = |file: &str| -> Result<String, ApiError> {
                match std::fs::read_to_string(dir.join(file)) {
                    Ok(text) => Ok(text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                    Err(e) => Err(ApiError::Internal(format!(
                        "cannot read {}: {e}",
                        dir.join(file).display()
                    ))),
                }
            };
            Ok::<_, ApiError>(pb::ModelCard {
                model: name,
                markdown: read(MODEL_CARD_FILE)?,
                roc_svg: read(ROC_PLOT_FILE)?,
                det_svg: read(DET_PLOT_FILE)?,
            })
        })
        .await
        .map_err(|e| ApiError::Internal(format!("reading the model card: {e}")))??;
        Ok(Response::new(card))
    }
}
