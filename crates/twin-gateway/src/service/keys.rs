//! `twin.v1.ApiKeys`: admin keys list, create and revoke keys while the gateway runs. The
//! admission layer lets only admin keys in; the keys file is the single source of truth.

use tonic::{Request, Response, Status};
use twin_proto::v1 as pb;
use twin_proto::v1::api_keys_server::ApiKeys;

use crate::auth::{KeyInfo, Scope};
use crate::state::AppState;
use crate::status::ApiError;

#[derive(Debug, Clone)]
pub struct ApiKeysService {
    pub state: AppState,
}

fn scope_to_proto(scope: Scope) -> pb::KeyScope {
    match scope {
        Scope::Read => pb::KeyScope::Read,
        Scope::Write => pb::KeyScope::Write,
        Scope::Admin => pb::KeyScope::Admin,
    }
}

fn key_to_proto(info: KeyInfo) -> pb::ApiKey {
    pb::ApiKey {
        key_id: info.key_id,
        scope: scope_to_proto(info.scope) as i32,
        tenant: info.tenant,
        name: info.name,
    }
}

/// Runs a blocking key-file operation off the executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::auth::AuthError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("keys file task failed: {e}")))?
        .map_err(ApiError::from)
}

#[tonic::async_trait]
impl ApiKeys for ApiKeysService {
    async fn list_keys(
        &self,
        _request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let keys = self.state.keys.current().list();
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.into_iter().map(key_to_proto).collect(),
        }))
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let r = request.into_inner();
        let scope = match pb::KeyScope::try_from(r.scope) {
            Ok(pb::KeyScope::Read) => Scope::Read,
            Ok(pb::KeyScope::Write) => Scope::Write,
            Ok(pb::KeyScope::Admin) => Scope::Admin,
            _ => {
                return Err(ApiError::InvalidArgument(format!(
                    "scope {} is not one: use KEY_SCOPE_READ, KEY_SCOPE_WRITE or KEY_SCOPE_ADMIN",
                    r.scope
                ))
                .into())
            }
        };
        let keys = self.state.keys.clone();
        let (info, secret) = blocking(move || keys.create(scope, &r.tenant, &r.name)).await?;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(key_to_proto(info)),
            secret,
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::RevokeKeyResponse>, Status> {
        let key_id = request.into_inner().key_id;
        let keys = self.state.keys.clone();
        let revoked = blocking(move || keys.revoke(&key_id)).await?;
        Ok(Response::new(pb::RevokeKeyResponse { revoked }))
    }
}
