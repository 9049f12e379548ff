//! CopyObject: the source read like a GET, written through the shared write path.

use super::*;

impl GatewayS3 {
    pub(super) async fn do_copy(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let (src_bucket, src_key, src_version) = match &i.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => (
                bucket.to_string(),
                key.to_string(),
                version_id.as_ref().map(|v| v.to_string()),
            ),
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "access point copy sources are not supported"
                ));
            }
        };
        self.bucket(&src_bucket).await?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if src_bucket == i.bucket && src_key == i.key && !replace && src_version.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
            ));
        }
        let (found, (), stream) = self
            .read_version_at(&src_bucket, &src_key, src_version.as_deref(), |found| {
                check_preconditions(
                    &found.meta,
                    found.last_modified,
                    i.copy_source_if_match.as_ref(),
                    i.copy_source_if_none_match.as_ref(),
                    i.copy_source_if_modified_since.as_ref(),
                    i.copy_source_if_unmodified_since.as_ref(),
                )
                .map_err(|e| {
                    // A failed copy-source condition is 412 whatever the header.
                    if *e.code() == S3ErrorCode::NotModified {
                        s3_error!(PreconditionFailed)
                    } else {
                        e
                    }
                })?;
                Ok(((), None))
            })
            .await?;
        // Metadata (type, user metadata, stored headers) follows the metadata directive, tags
        // the tagging directive; both default to COPY.
        let mut meta = if replace {
            ObjectMeta {
                content_type: i.content_type.clone().unwrap_or_default(),
                user_metadata: user_metadata(i.metadata.clone()),
                attributes: ObjectAttributes {
                    headers: stored_headers(&StoredHeaders {
                        cache_control: i.cache_control.as_deref(),
                        content_disposition: i.content_disposition.as_deref(),
                        content_encoding: i.content_encoding.as_deref(),
                        content_language: i.content_language.as_deref(),
                        expires: i.expires.as_ref(),
                    }),
                    ..ObjectAttributes::default()
                },
                ..ObjectMeta::default()
            }
        } else {
            ObjectMeta {
                content_type: found.meta.content_type.clone(),
                user_metadata: found.meta.user_metadata.clone(),
                attributes: ObjectAttributes {
                    headers: found.meta.attributes.headers.clone(),
                    ..ObjectAttributes::default()
                },
                ..ObjectMeta::default()
            }
        };
        meta.tags = if i
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE)
        {
            tagging::parse_header(i.tagging.as_deref())?
        } else {
            found.meta.tags.clone()
        };
        // The copy is one piece with the same bytes: a full-object checksum of the source still
        // holds; a new algorithm is computed while the bytes stream.
        let checksums = match &i.checksum_algorithm {
            Some(a) => {
                meta.attributes.checksum =
                    Some(checksum::checksum_value(a.as_str(), String::new()));
                Some(body::ChecksumRequest::new(
                    Some(a),
                    Checksum::default(),
                    None,
                    &hyper::HeaderMap::new(),
                )?)
            }
            None => {
                meta.attributes.checksum = found
                    .meta
                    .attributes
                    .checksum
                    .clone()
                    .filter(|c| c.kind == checksum::FULL_OBJECT);
                None
            }
        };
        // A copy keeps the source's ETag when it had one (same bytes).
        let keep = (!found.meta.etag.is_empty()).then(|| found.meta.etag.clone());
        let expect = keep.as_deref().and_then(body::etag_md5);
        let lkey = keys::ledger_key(&i.bucket, &i.key);
        let w = Write {
            bucket: &i.bucket,
            key: &i.key,
            size: found.size,
            meta,
            expect_md5: expect,
            etag: keep,
            backend: None,
            checksums,
            cond: WritePrecondition::default(),
            announced: None,
        };
        let (meta, _) = self.write_object(w, stream).await?;
        let copied = self.ledger.copies(&lkey).await.ok().map(found_of);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: etag_of(&meta),
                last_modified: Some(to_s3_time(
                    copied.map_or_else(Timestamp::now, |c| c.last_modified),
                )),
                ..CopyObjectResult::default()
            }),
            version_id: versioning::answered_version(meta.version_id.as_deref(), false),
            copy_source_version_id: src_version
                .or_else(|| versioning::answered_version(found.meta.version_id.as_deref(), false)),
            ..CopyObjectOutput::default()
        }))
    }
}
