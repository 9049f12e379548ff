//! Object tagging: Put/Get/DeleteObjectTagging, the `x-amz-tagging` header of PutObject,
//! CopyObject and CreateMultipartUpload, and `x-amz-tagging-count` on GET/HEAD.
//!
//! Tags live in the ledger with every copy of the version (`tags`); a write of a new version
//! replaces them with its own, a delete removes them with the object, and PutObjectTagging
//! changes them in place under the key lock ([`s3o_store::MetadataStore::set_version_tags`]):
//! on the current version, or with `versionId` on any version (each keeps its own tags).
//! S3's limits are checked here first, so a refused tag set answers `InvalidTag` and changes
//! nothing; the ledger checks the same limits again before any SQL.

use s3o_store::limits::{MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS};

use super::*;

/// Tags by key.
pub(super) type Tags = BTreeMap<String, String>;

fn invalid_tag(msg: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::Custom("InvalidTag".into()), msg.to_string())
        .tap_status(hyper::StatusCode::BAD_REQUEST)
}

/// Sets a status on an error in an expression.
trait TapStatus {
    fn tap_status(self, status: hyper::StatusCode) -> Self;
}

impl TapStatus for S3Error {
    fn tap_status(mut self, status: hyper::StatusCode) -> Self {
        self.set_status_code(status);
        self
    }
}

/// Builds a tag set from pairs, refusing what S3 refuses: a repeated key, more than
/// [`MAX_TAGS`] tags, a key of no or more than [`MAX_TAG_KEY_CHARS`] characters, a value of
/// more than [`MAX_TAG_VALUE_CHARS`].
pub(super) fn tag_set(pairs: impl IntoIterator<Item = (String, String)>) -> S3Result<Tags> {
    tag_set_of(pairs, MAX_TAGS, "Object")
}

/// [`tag_set`] with at most `max` tags (`what`: `Object` or `Bucket`, for the message).
fn tag_set_of(
    pairs: impl IntoIterator<Item = (String, String)>,
    max: usize,
    what: &str,
) -> S3Result<Tags> {
    let mut out = Tags::new();
    for (k, v) in pairs {
        let n = k.chars().count();
        if n == 0 || n > MAX_TAG_KEY_CHARS {
            return Err(invalid_tag(format!(
                "a tag key must have 1 to {MAX_TAG_KEY_CHARS} characters"
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(invalid_tag(format!(
                "a tag value must have at most {MAX_TAG_VALUE_CHARS} characters"
            )));
        }
        if k.contains('\0') || v.contains('\0') {
            return Err(invalid_tag("a tag must not contain NUL"));
        }
        if out.insert(k, v).is_some() {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    if out.len() > max {
        return Err(invalid_tag(format!(
            "{what} tags cannot be greater than {max}"
        )));
    }
    Ok(out)
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn form_decode(s: &str) -> S3Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| invalid_tag("the tagging header has a bad escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| invalid_tag("the tagging header is not UTF-8"))
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded; `k` alone is an empty
/// value). Absent or empty ⇒ none.
pub(super) fn parse_header(header: Option<&str>) -> S3Result<Tags> {
    let Some(h) = header.filter(|h| !h.is_empty()) else {
        return Ok(Tags::new());
    };
    let pairs = h
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((form_decode(k)?, form_decode(v)?))
        })
        .collect::<S3Result<Vec<_>>>()?;
    tag_set(pairs)
}

/// The tag set of a request body.
fn from_tagging(t: Tagging) -> S3Result<Tags> {
    tag_set(
        t.tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())),
    )
}

/// `x-amz-tagging-count` for a HEAD answer (GET has its own field).
pub(super) fn count_header(
    tags: &Tags,
) -> Option<(hyper::header::HeaderName, hyper::header::HeaderValue)> {
    (!tags.is_empty()).then(|| {
        (
            hyper::header::HeaderName::from_static("x-amz-tagging-count"),
            hyper::header::HeaderValue::from(tags.len()),
        )
    })
}

impl GatewayS3 {
    /// Sets the tags of one version of `bucket/key` (the current one when `version` is
    /// `None`) and answers its `x-amz-version-id`. No object ⇒ NoSuchKey; no such version ⇒
    /// NoSuchVersion; a delete marker ⇒ MethodNotAllowed (as on GET).
    async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: &Tags,
    ) -> S3Result<Option<String>> {
        self.bucket(bucket).await?;
        let lkey = keys::ledger_key(bucket, key);
        match self.ledger.set_version_tags(&lkey, version, tags).await {
            Ok(id) => Ok(super::versioning::answered_version(
                Some(&id),
                version.is_some(),
            )),
            // Gone, or a delete marker: the version's lookup answers as S3 does.
            Err(StoreError::ObjectNotFound { .. } | StoreError::VersionNotFound { .. }) => {
                self.lookup_at(bucket, key, version).await?;
                Err(match version {
                    Some(_) => s3_error!(NoSuchVersion),
                    None => s3_error!(NoSuchKey),
                })
            }
            Err(e) => Err(write_err(e)),
        }
    }

    pub(super) async fn do_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let i = req.input;
        let tags = from_tagging(i.tagging)?;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), &tags)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    pub(super) async fn do_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        // Every version keeps its own tags.
        let found = self
            .lookup_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let tag_set = found
            .meta
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect();
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set,
            version_id: super::versioning::answered_version(
                found.meta.version_id.as_deref(),
                i.version_id.is_some(),
            ),
        }))
    }

    pub(super) async fn do_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let i = req.input;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), &Tags::new())
            .await?;
        Ok(S3Response::with_status(
            DeleteObjectTaggingOutput { version_id },
            hyper::StatusCode::NO_CONTENT,
        ))
    }
}

/// Most tags a bucket may carry (S3's limit; an object's is [`MAX_TAGS`]).
const MAX_BUCKET_TAGS: usize = 50;

/// The field of the bucket row's `extra` settings holding its tags (a JSON object).
const BUCKET_TAGS_FIELD: &str = "tags";

/// Bucket tagging (Put/Get/DeleteBucketTagging): the tag set lives in the bucket row's
/// `extra` settings, written as one field, so it goes with the bucket and never races the
/// bucket's other settings.
impl GatewayS3 {
    pub(super) async fn do_put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let i = req.input;
        let tags = tag_set_of(
            i.tagging
                .tag_set
                .into_iter()
                .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())),
            MAX_BUCKET_TAGS,
            "Bucket",
        )?;
        self.bucket(&i.bucket).await?;
        let value = (!tags.is_empty()).then(|| serde_json::json!(tags));
        self.ledger
            .set_bucket_extra(&i.bucket, BUCKET_TAGS_FIELD, value.as_ref())
            .await
            .map_err(write_err)?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(super) async fn do_get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let b = self
            .ledger
            .bucket(&req.input.bucket)
            .await
            .map_err(|e| match e {
                StoreError::BucketNotFound { .. } | StoreError::InvalidInput { .. } => {
                    s3_error!(NoSuchBucket, "bucket {} does not exist", req.input.bucket)
                }
                e => read_err(e),
            })?;
        let tags = b
            .settings
            .extra
            .get(BUCKET_TAGS_FIELD)
            .and_then(|v| v.as_object())
            .filter(|m| !m.is_empty());
        let Some(tags) = tags else {
            return Err(S3Error::with_message(
                S3ErrorCode::Custom("NoSuchTagSet".into()),
                "There is no tag set associated with the bucket.",
            )
            .tap_status(hyper::StatusCode::NOT_FOUND));
        };
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag {
                key: Some(k.clone()),
                value: Some(v.as_str().unwrap_or_default().to_owned()),
            })
            .collect();
        Ok(S3Response::new(GetBucketTaggingOutput { tag_set }))
    }

    pub(super) async fn do_delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let b = &req.input.bucket;
        self.bucket(b).await?;
        self.ledger
            .set_bucket_extra(b, BUCKET_TAGS_FIELD, None)
            .await
            .map_err(write_err)?;
        Ok(S3Response::with_status(
            DeleteBucketTaggingOutput::default(),
            hyper::StatusCode::NO_CONTENT,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tags_decode_and_sort() {
        let t = parse_header(Some("foo=bar&bar&a%20b=c+d")).unwrap();
        let pairs: Vec<_> = t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, vec![("a b", "c d"), ("bar", ""), ("foo", "bar")]);
        assert!(parse_header(None).unwrap().is_empty());
    }

    #[test]
    fn s3_limits_are_invalid_tag() {
        let code = |r: S3Result<Tags>| r.unwrap_err().code().as_str().to_owned();
        assert_eq!(code(parse_header(Some("a=1&a=2"))), "InvalidTag");
        let eleven = (0..11)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(code(parse_header(Some(&eleven))), "InvalidTag");
        let long_key = format!("{}=v", "k".repeat(129));
        assert_eq!(code(parse_header(Some(&long_key))), "InvalidTag");
        let long_value = format!("k={}", "é".repeat(257));
        assert_eq!(code(parse_header(Some(&long_value))), "InvalidTag");
        // The limits count characters: 256 two-byte characters are fine.
        assert!(parse_header(Some(&format!("k={}", "é".repeat(256)))).is_ok());
        assert_eq!(code(parse_header(Some("k=%zz"))), "InvalidTag");
    }
}
