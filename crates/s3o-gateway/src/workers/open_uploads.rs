//! Writes a crash left open on a backend: S3 multipart uploads (ListMultipartUploads, which
//! object_store does not offer, signed with its SigV4 authorizer) and a local directory's
//! staging files (`<path>#<n>`, which object_store writes a streamed upload to and renames on
//! completion). Both hold bytes the provider keeps (and bills) until someone aborts them.

use std::time::{Duration, SystemTime};

use object_store::client::{HttpClient, HttpConnector as _, HttpRequestBody, ReqwestConnector};
use object_store::path::Path;
use serde::Deserialize;

use crate::backends::{Backend, RawAccess, S3Access};

/// How long one listing page or one abort may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Pages of one listing at most (1000 uploads each): a backend with more open uploads is
/// worked through over several passes.
const MAX_PAGES: usize = 50;

/// One open write on a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenUpload {
    /// Where the write will complete, as [`target`] names it: the object path on S3, the
    /// file on a local directory.
    pub(crate) target: String,
    /// When the backend says it started (a staging file's modification time).
    pub(crate) started: SystemTime,
    /// The S3 upload id, or the staging file of a local directory.
    pub(crate) handle: Handle,
}

/// How an open write is ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Handle {
    /// An S3 multipart upload.
    Upload(String),
    /// A local staging file.
    Staging(std::path::PathBuf),
}

/// How an object path of `b` compares with [`OpenUpload::target`]: itself on S3, the file
/// object_store maps it to on a local directory (`None` for a path it cannot map).
pub(crate) fn target(b: &Backend, object_path: &str) -> Option<String> {
    match &b.raw {
        RawAccess::S3(_) => Some(object_path.to_owned()),
        RawAccess::Local { fs, .. } => {
            let p = Path::parse(object_path).ok()?;
            let file = fs.path_to_filesystem(&p).ok()?;
            file.to_str().map(str::to_owned)
        }
    }
}

/// Every write open on `b` (S3: at most [`MAX_PAGES`] pages, in the backend's key order).
pub(crate) async fn list(b: &Backend) -> Result<Vec<OpenUpload>, String> {
    match &b.raw {
        RawAccess::Local { root, .. } => {
            let root = root.clone();
            tokio::task::spawn_blocking(move || staging_files(&root))
                .await
                .map_err(|e| e.to_string())?
        }
        RawAccess::S3(s3) => {
            let S3Access {
                endpoint,
                bucket,
                region,
                credential,
                options,
            } = &**s3;
            let client = ReqwestConnector::default()
                .connect(options)
                .map_err(|e| e.to_string())?;
            let base = format!("{}/{}", endpoint.trim_end_matches('/'), encode(bucket));
            let mut out = Vec::new();
            let (mut key_marker, mut id_marker) = (String::new(), String::new());
            for _ in 0..MAX_PAGES {
                // Each signed ListMultipartUploads is a request against the backend's budget,
                // counted like the clients' calls: once, when it is made.
                b.meter.count(1, 0, 0);
                let page = tokio::time::timeout(
                    CALL_TIMEOUT,
                    list_page(&client, &base, region, credential, &key_marker, &id_marker),
                )
                .await
                .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))??;
                for u in page.uploads {
                    let started = time::OffsetDateTime::parse(
                        &u.initiated,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|e| {
                        format!("upload {}: Initiated {:?}: {e}", u.upload_id, u.initiated)
                    })?;
                    out.push(OpenUpload {
                        target: u.key,
                        started: started.into(),
                        handle: Handle::Upload(u.upload_id),
                    });
                }
                if !page.is_truncated {
                    return Ok(out);
                }
                match (page.next_key_marker, page.next_upload_id_marker) {
                    (Some(k), Some(i))
                        if (k.as_str(), i.as_str()) != (&*key_marker, &*id_marker) =>
                    {
                        key_marker = k;
                        id_marker = i;
                    }
                    // A truncated page without a way forward: what we have is all we get.
                    _ => return Ok(out),
                }
            }
            Ok(out)
        }
    }
}

/// Ends one open write: aborts the S3 upload, or removes the staging file. An upload or file
/// already gone counts as ended.
pub(crate) async fn abort(b: &Backend, u: &OpenUpload) -> Result<(), String> {
    match &u.handle {
        Handle::Upload(id) => {
            let Some(mp) = &b.multipart else {
                return Err("backend has no multipart uploads".into());
            };
            let path = Path::parse(&u.target).map_err(|e| e.to_string())?;
            match tokio::time::timeout(CALL_TIMEOUT, mp.abort_multipart(&path, id)).await {
                Ok(Ok(()) | Err(object_store::Error::NotFound { .. })) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
            }
        }
        Handle::Staging(file) => match tokio::fs::remove_file(file).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListPage {
    #[serde(rename = "Upload")]
    uploads: Vec<UploadEntry>,
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: String,
}

async fn list_page(
    client: &HttpClient,
    base: &str,
    region: &str,
    credential: &object_store::aws::AwsCredential,
    key_marker: &str,
    id_marker: &str,
) -> Result<ListPage, String> {
    let mut url = format!("{base}?uploads=");
    if !key_marker.is_empty() {
        url.push_str(&format!(
            "&key-marker={}&upload-id-marker={}",
            encode(key_marker),
            encode(id_marker)
        ));
    }
    let mut req = hyper::Request::get(&url)
        .body(HttpRequestBody::empty())
        .map_err(|e| e.to_string())?;
    object_store::aws::AwsAuthorizer::new(credential, "s3", region)
        .try_authorize(&mut req, None)
        .map_err(|e| e.to_string())?;
    let resp = client.execute(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.into_body().bytes().await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(format!(
            "ListMultipartUploads answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    quick_xml::de::from_str(&text).map_err(|e| format!("ListMultipartUploads answer: {e}"))
}

/// A query parameter as SigV4 expects it: every byte outside RFC 3986's unreserved set.
fn encode(s: &str) -> String {
    crate::keys::uri_encode(s, false)
}

/// Staging files under `root`: names ending `#<digits>`, the object path being the rest.
fn staging_files(root: &std::path::Path) -> Result<Vec<OpenUpload>, String> {
    let mut out = Vec::new();
    // object_store maps paths under the canonical root: walk the same tree.
    let root = std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let file = entry.path();
            if kind.is_dir() {
                dirs.push(file);
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some((stem, n)) = name.rsplit_once('#') else {
                continue;
            };
            if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let Some(target) = file.with_file_name(stem).to_str().map(str::to_owned) else {
                continue;
            };
            let started = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            out.push(OpenUpload {
                target,
                started,
                handle: Handle::Staging(file),
            });
        }
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>pool</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>b/x/@2</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>b/x/@1</Key><UploadId>id-1</UploadId><Initiated>2026-01-02T03:04:05.000Z</Initiated>
    <StorageClass>STANDARD</StorageClass></Upload>
  <Upload><Key>b/x/@2</Key><UploadId>id-2</UploadId><Initiated>2026-01-02T03:04:06Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let p: ListPage = quick_xml::de::from_str(xml).unwrap();
        assert!(p.is_truncated);
        assert_eq!(p.uploads.len(), 2);
        assert_eq!(p.uploads[1].key, "b/x/@2");
        assert_eq!(p.next_upload_id_marker.as_deref(), Some("id-2"));
        let empty: ListPage = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.uploads.is_empty() && !empty.is_truncated);
    }

    #[test]
    fn staging_files_are_found_with_their_object_path() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("photos").join("k%20x");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("@v1#1"), b"partial").unwrap();
        std::fs::write(sub.join("@v2"), b"whole").unwrap();
        std::fs::write(sub.join("odd#name"), b"not staging").unwrap();
        let found = staging_files(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let canonical = std::fs::canonicalize(&sub).unwrap().join("@v1");
        assert_eq!(found[0].target, canonical.to_str().unwrap());
        assert_eq!(found[0].handle, Handle::Staging(sub.join("@v1#1")));
    }
}
