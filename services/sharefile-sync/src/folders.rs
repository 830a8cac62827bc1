//! The application's ShareFile folder, `<root>/<application id>`: looked up by path, created when
//! missing (a concurrent creation's `Conflict` is answered by looking up again), and remembered
//! in `folders` so each folder costs ShareFile one lookup.

use std::sync::Arc;

use brain_runtime::{consumer::HandlerError, db};
use sqlx::PgPool;

use crate::{copy::sharefile_error, sharefile::{ShareFileClient, ShareFileError}};

#[derive(Clone)]
pub struct Folders {
    pub sharefile: Arc<ShareFileClient>,
    pub pool: PgPool,
    /// `/Clients`: the folder every application's folder is made in (it must exist).
    pub root: String,
}

impl Folders {
    /// The folder's id and path.
    pub async fn of_application(&self, tenant_id: &str, application_id: &str) -> Result<(String, String), HandlerError> {
        let name = folder_name(application_id);
        let path = format!("{}/{name}", self.root.trim_end_matches('/'));
        let known: Option<String> = sqlx::query_scalar("SELECT folder_id FROM folders WHERE path = $1").bind(&path).fetch_optional(&self.pool).await.map_err(db::classify)?;
        if let Some(id) = known {
            return Ok((id, path));
        }
        let error = sharefile_error(&self.sharefile);
        let id = match self.sharefile.by_path(&path).await.map_err(&error)? {
            Some(folder) => folder.id,
            None => {
                let root = self.sharefile.by_path(&self.root).await.map_err(&error)?.ok_or_else(|| {
                    HandlerError::unavailable("sharefile_root_missing", format!("the ShareFile folder {} does not exist; create it or set SHAREFILE_SYNC__ROOT_FOLDER", self.root))
                })?;
                match self.sharefile.create_folder(&root.id, &name, &format!("Brain: documents of application {application_id} ({tenant_id})")).await {
                    Ok(folder) => folder.id,
                    Err(ShareFileError::Rejected { status: 409, .. }) => self.sharefile.by_path(&path).await.map_err(&error)?.map(|f| f.id).ok_or_else(|| {
                        HandlerError::transient("sharefile_conflict", format!("creating {path} conflicted, yet it is not there"))
                    })?,
                    Err(e) => return Err(error(e)),
                }
            }
        };
        sqlx::query("INSERT INTO folders (path, folder_id) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING").bind(&path).bind(&id).execute(&self.pool).await.map_err(db::classify)?;
        Ok((id, path))
    }
}

/// A folder name ShareFile accepts for an application id.
fn folder_name(application_id: &str) -> String {
    application_id.chars().map(|c| if matches!(c, '\\' | '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control() { '_' } else { c }).collect()
}
