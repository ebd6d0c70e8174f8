//! `twin.v1.Models`: what is served and its contract.

use tonic::{Request, Response, Status};
use twin_proto::v1 as pb;
use twin_proto::v1::models_server::Models;

use crate::convert::model;
use crate::state::AppState;

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
}
