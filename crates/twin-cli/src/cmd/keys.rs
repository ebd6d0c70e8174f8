//! `twin keys`: list, create and revoke the gateway's api keys with an admin key. The
//! gateway writes its keys file and takes the change at once; no restart.

use twin_proto::v1::{ApiKey, CreateKeyRequest, KeyScope, ListKeysRequest, RevokeKeyRequest};

use super::client::{self, ClientArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples (TWIN_API_KEY holds an admin key):\n  \
    twin keys list\n  \
    twin keys create --scope write --tenant acme --name mobile-app   # prints the key once\n  \
    twin keys revoke key:3f2a9c01b4de")]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysAction {
    /// Every key: id, scope, tenant and name (never the key).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A new random key; printed once, kept nowhere but in your hands.
    Create {
        /// read, write or admin.
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: String,
        /// The tenant whose subjects, points, jobs and decisions the key sees; none: the
        /// default tenant. Admin keys take none.
        #[arg(long, default_value = "")]
        tenant: String,
        /// A name for people (no spaces).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key by its id (as `twin keys list` shows it).
    Revoke {
        key_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    client::block_on(keys(args))
}

fn scope_name(scope: i32) -> String {
    KeyScope::try_from(scope)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("KEY_SCOPE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("scope#{scope}"))
}

fn key_json(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "key_id": key.key_id,
        "scope": scope_name(key.scope),
        "tenant": key.tenant,
        "name": key.name,
    })
}

async fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let client = match &args.action {
        KeysAction::List { client }
        | KeysAction::Create { client, .. }
        | KeysAction::Revoke { client, .. } => client.clone(),
    };
    let connection = client.connect().await?;
    let mut keys = connection.api_keys();
    match args.action {
        KeysAction::List { .. } => {
            let list = keys
                .list_keys(ListKeysRequest {})
                .await
                .map_err(|status| connection.error("list keys", status))?
                .into_inner()
                .keys;
            if client.json {
                let list: Vec<_> = list.iter().map(key_json).collect();
                client::print_json(&serde_json::json!({ "keys": list }));
                return Ok(());
            }
            println!("{:<18} {:<6} {:<20} name", "key id", "scope", "tenant");
            for key in &list {
                println!(
                    "{:<18} {:<6} {:<20} {}",
                    key.key_id,
                    scope_name(key.scope),
                    twin_core::subject::tenant_label(&key.tenant),
                    key.name
                );
            }
        }
        KeysAction::Create {
            scope,
            tenant,
            name,
            ..
        } => {
            let scope = match scope.as_str() {
                "read" => KeyScope::Read,
                "write" => KeyScope::Write,
                _ => KeyScope::Admin,
            };
            let created = keys
                .create_key(CreateKeyRequest {
                    scope: scope as i32,
                    tenant,
                    name,
                })
                .await
                .map_err(|status| connection.error("create key", status))?
                .into_inner();
            let key = created.key.unwrap_or_default();
            if client.json {
                let mut value = key_json(&key);
                value["secret"] = created.secret.into();
                client::print_json(&value);
                return Ok(());
            }
            println!("{}", created.secret);
            eprintln!(
                "created {} ({} key, tenant {}): the key above is shown once and kept nowhere; store it now",
                key.key_id,
                scope_name(key.scope),
                twin_core::subject::tenant_label(&key.tenant)
            );
        }
        KeysAction::Revoke { key_id, .. } => {
            let revoked = keys
                .revoke_key(RevokeKeyRequest {
                    key_id: key_id.clone(),
                })
                .await
                .map_err(|status| connection.error("revoke key", status))?
                .into_inner()
                .revoked;
            if client.json {
                client::print_json(&serde_json::json!({ "key_id": key_id, "revoked": revoked }));
            } else {
                println!("revoked {key_id}: it is refused from now on");
            }
        }
    }
    Ok(())
}
