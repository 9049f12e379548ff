//! Multipart uploads: create, parts (UploadPart and UploadPartCopy share
//! [`GatewayS3::store_part`]), Complete (assembly; the part sizes are kept with the object for
//! `partNumber` reads), Abort, and the listings of uploads and parts.

use s3o_store::{NULL_VERSION_ID, Versioning};

use super::*;

impl GatewayS3 {
    pub(super) async fn upload_for(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<s3o_store::MultipartUpload> {
        self.bucket(bucket).await?;
        let up = self.ledger.upload(upload_id).await.map_err(write_err)?;
        // An upload id only works for the key it was created for.
        if up.object_key != keys::ledger_key(bucket, key) {
            return Err(s3_error!(NoSuchUpload));
        }
        Ok(up)
    }

    /// Ends an upload: releases it in the ledger (row and parts gone, their bytes moved from
    /// the backend's charge to the cleanup queue, in one transaction), deletes the queued part
    /// bytes now, then whatever else lies under the upload's directory (attempts never
    /// recorded: a failed verification whose delete failed, a gateway killed mid-part).
    /// Complete calls it after its object committed, Abort at once. An error means the ledger
    /// kept the upload (and its charge): nothing was deleted.
    pub(super) async fn end_upload(
        &self,
        up: &s3o_store::MultipartUpload,
        reason: &str,
    ) -> crate::ledger::LResult<()> {
        let released = self.ledger.release_upload(&up.upload_id, reason).await?;
        self.remove_displaced(released, reason).await;
        self.delete_parts(&up.backend_name, &up.upload_id).await;
        Ok(())
    }

    /// Deletes every stored part object of an upload (best effort).
    pub(super) async fn delete_parts(&self, backend: &str, upload_id: &str) {
        let Some(b) = self.backends.get(backend) else {
            return;
        };
        let dir = keys::path(&keys::upload_dir(upload_id));
        let listed: Vec<_> = b.store.list(Some(&dir)).collect().await;
        for o in listed.into_iter().flatten() {
            if let Err(e) = b.store.delete(&o.location).await {
                tracing::warn!(backend = %backend, path = %o.location, error = %e, "could not delete a part");
            }
        }
    }

    pub(super) async fn do_create_mpu(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let lkey = keys::ledger_key(&i.bucket, &i.key);
        // Parts land on one backend chosen now (each part is admitted on its own).
        let backend = self
            .ledger
            .pick_backend_for_new_upload(&self.write_candidates()?)
            .await
            .map_err(write_err)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        // What the completed object gets (see checksum.rs for the checksum type).
        let sum = checksum::for_upload(i.checksum_algorithm.as_ref(), i.checksum_type.as_ref())?;
        let meta = ObjectMeta {
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
                checksum: sum.clone(),
                parts: Vec::new(),
            },
            tags: tagging::parse_header(i.tagging.as_deref())?,
            ..ObjectMeta::default()
        };
        // Encryption at rest: an encrypted bucket's upload gets one upload-level DEK.
        let upload_key = match &self.crypto {
            Some(c) => c.upload_key(&i.bucket).await?,
            None => None,
        };
        match upload_key {
            Some(env) => crate::crypto::gateway::create_sealed_upload(
                &self.ledger,
                &upload_id,
                &lkey,
                &backend,
                &meta,
                &env,
            )
            .await
            .map_err(write_err)?,
            None => self
                .ledger
                .create_upload(&upload_id, &lkey, &backend, &meta)
                .await
                .map_err(write_err)?,
        }
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload_id),
            checksum_algorithm: sum
                .as_ref()
                .map(|c| ChecksumAlgorithm::from(c.algorithm.clone())),
            checksum_type: sum.map(|c| ChecksumType::from(c.kind)),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    pub(super) async fn do_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(InvalidArgument, "part number must be 1..=10000"));
        }
        let up = self.upload_for(&i.bucket, &i.key, &i.upload_id).await?;
        // Every part goes to the upload's backend, so one over its monthly budget leaves the
        // part no backend at all: the writes rule (none left ⇒ 507 InsufficientStorage), told
        // before the body streams. Abort and Complete still run (they spend no ingress).
        if self.backends.over_budget(&up.backend_name) {
            self.backends.usage().rejected(&up.backend_name);
            return Err(mapped_error(&s3o_store::S3Error::INSUFFICIENT_STORAGE));
        }
        let size = i
            .content_length
            .ok_or_else(|| s3_error!(MissingContentLength))?;
        let expect = match &i.content_md5 {
            Some(h) => Some(body::content_md5(h).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let stream: ByteStream = match i.body {
            Some(b) => Box::pin(b),
            None => Box::pin(futures::stream::empty()),
        };
        // An upload created with an algorithm gets every part's checksum in it.
        let upload_sum = up.attributes.checksum.clone();
        let algorithm = i.checksum_algorithm.clone().or_else(|| {
            upload_sum
                .as_ref()
                .map(|c| ChecksumAlgorithm::from(c.algorithm.clone()))
        });
        let checksums = body::ChecksumRequest::new(
            algorithm.as_ref(),
            Checksum {
                checksum_crc32: i.checksum_crc32.clone(),
                checksum_crc32c: i.checksum_crc32c.clone(),
                checksum_sha1: i.checksum_sha1.clone(),
                checksum_sha256: i.checksum_sha256.clone(),
                checksum_crc64nvme: i.checksum_crc64nvme.clone(),
                ..Checksum::default()
            },
            req.trailing_headers,
            &req.headers,
        )?;
        let (etag, sums) = self
            .store_part(&up, i.part_number, size, expect, checksums, stream)
            .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            ..UploadPartOutput::default()
        }))
    }

    /// Stores one part of `up` (UploadPart and UploadPartCopy alike): checked against the
    /// upload's backend quota (a read, so a part that cannot fit is refused before its body
    /// streams), streamed to a path of its own (an attempt never overwrites the bytes of a
    /// part recorded earlier), verified (length, MD5, checksums), then recorded and charged to
    /// the backend in one ledger transaction, which refuses it (`507`, its bytes deleted) when
    /// it no longer fits: exact across gateway processes. The last attempt recorded is the
    /// part; the one it replaces is deleted. Returns its ETag and the verified checksums.
    pub(super) async fn store_part(
        &self,
        up: &s3o_store::MultipartUpload,
        part_number: i32,
        size: i64,
        expect: Option<[u8; 16]>,
        mut checksums: body::ChecksumRequest,
        stream: ByteStream,
    ) -> S3Result<(String, Checksum)> {
        // Encryption at rest: a part of an encrypted upload is sealed with the upload's DEK
        // (UploadPart and UploadPartCopy alike).
        let seal = match crate::crypto::gateway::sealed_of_upload(up) {
            Some(k) => Some(
                crate::crypto::gateway::seal_part(
                    self.crypto.as_deref(),
                    &k,
                    part_number,
                    size,
                    &mut checksums.hasher,
                )
                .await?,
            ),
            None => None,
        };
        let stored = seal.as_ref().map_or(size, |s| s.stored_size);
        self.ledger
            .part_fits(stored, &up.backend_name)
            .await
            .map_err(write_err)?;
        let backend = self.backend(&up.backend_name)?.clone();
        let part_key = keys::part_attempt_path(&up.upload_id, part_number);
        let path = keys::path(&part_key);
        let stream = match &seal {
            Some(s) => s.encrypt(stream),
            None => stream,
        };
        let written = match body::upload(
            &backend,
            &path,
            stream,
            u64::try_from(stored).ok(),
            &mut checksums.hasher,
            None,
        )
        .await
        {
            Ok(u) => match &seal {
                Some(s) => s.plaintext(u, &mut checksums.hasher),
                None => u,
            },
            Err(UploadError::Body(e)) => return Err(body_error(e)),
            Err(UploadError::Backend(e)) => {
                tracing::warn!(backend = %backend.name, error = %e, "part upload failed");
                return Err(s3_error!(
                    InternalError,
                    "backend {} failed to store the part",
                    backend.name
                ));
            }
        };
        let verified = if i64::try_from(written.size).ok() != Some(size) {
            Err(s3_error!(
                IncompleteBody,
                "body length differs from Content-Length"
            ))
        } else if expect.is_some_and(|m| m != written.md5) {
            Err(s3_error!(BadDigest, "Content-MD5 does not match the body"))
        } else {
            checksums.verify()
        };
        let sums = match verified {
            Ok(s) => s,
            Err(e) => {
                // Bytes that failed verification are never recorded. They are this attempt's
                // own: a part accepted earlier under this number keeps its bytes.
                let _ = backend.store.delete(&path).await;
                return Err(e);
            }
        };
        let etag = written.etag();
        let part_sum = up.attributes.checksum.as_ref().and_then(|u| {
            checksum::value_of(&sums, &u.algorithm)
                .map(|v| checksum::checksum_value(&u.algorithm, v.clone()))
        });
        let recorded = match &seal {
            Some(s) => {
                crate::crypto::gateway::record_sealed_part(
                    &self.ledger,
                    &up.upload_id,
                    part_number,
                    &etag,
                    stored,
                    &part_key,
                    &s.sealed,
                    part_sum,
                )
                .await
            }
            None => {
                self.ledger
                    .record_part(&up.upload_id, part_number, &etag, size, &part_key, part_sum)
                    .await
            }
        };
        match recorded {
            // The part it replaced (an earlier attempt under this number) left the charge for
            // the cleanup queue in the same transaction: its bytes go now.
            Ok(replaced) => self.remove_displaced(replaced, "replaced part").await,
            Err(e) => {
                // Unrecorded (no room left, upload aborted meanwhile, ledger down): the
                // attempt's bytes go; what a delete misses lies under the upload's directory,
                // swept with it.
                let _ = backend.store.delete(&path).await;
                return Err(write_err(e));
            }
        }
        Ok((etag, sums))
    }

    /// UploadPartCopy: the source (whole, or `x-amz-copy-source-range`) read like CopyObject
    /// reads it, from whichever copy is readable, and stored as UploadPart stores a part.
    pub(super) async fn do_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(InvalidArgument, "part number must be 1..=10000"));
        }
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
        let asked = i
            .copy_source_range
            .as_deref()
            .map(parse_copy_range)
            .transpose()?;
        let up = self.upload_for(&i.bucket, &i.key, &i.upload_id).await?;
        self.bucket(&src_bucket).await?;
        let (found, range, stream) = self
            .read_version_at(&src_bucket, &src_key, src_version.as_deref(), |found| {
                check_copy_source(
                    found,
                    i.copy_source_if_match.as_ref(),
                    i.copy_source_if_none_match.as_ref(),
                    i.copy_source_if_modified_since.as_ref(),
                    i.copy_source_if_unmodified_since.as_ref(),
                )?;
                let size = u64::try_from(found.size).unwrap_or(0);
                let range = match asked {
                    None => None,
                    Some((first, last)) if last < size => Some((first, last + 1)),
                    Some(_) => {
                        return Err(s3_error!(
                            InvalidRange,
                            "the range is not satisfiable for a source of {size} bytes"
                        ));
                    }
                };
                Ok((range, range))
            })
            .await?;
        let (size, expect) = match range {
            Some((s, e)) => (i64::try_from(e - s).unwrap_or(i64::MAX), None),
            // A whole single-part source carries its MD5 as ETag: the copy is checked against it.
            None => (found.size, body::etag_md5(&found.meta.etag)),
        };
        let checksums =
            body::ChecksumRequest::new(None, Checksum::default(), None, &hyper::HeaderMap::new())?;
        let (etag, _) = self
            .store_part(&up, i.part_number, size, expect, checksums, stream)
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(to_s3_time(Timestamp::now())),
                ..CopyPartResult::default()
            }),
            copy_source_version_id: src_version,
            ..UploadPartCopyOutput::default()
        }))
    }

    pub(super) async fn do_complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let lkey = keys::ledger_key(&i.bucket, &i.key);
        // A retry while the first Complete runs, or after it finished, gets its result.
        if let Some(running) = self.completions.get(&i.upload_id) {
            return Ok(complete_answer(i.bucket, i.key, lkey, running));
        }
        let asked = i
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.clone())
            .unwrap_or_default();
        let up = match self.upload_for(&i.bucket, &i.key, &i.upload_id).await {
            Ok(up) => up,
            Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => {
                // A retry after a success this process no longer remembers (restart): the
                // object the listed parts make is the key's current version ⇒ that answer.
                return match self.completed_before(&lkey, &asked).await {
                    Some((etag, version_id)) => {
                        let done = Done {
                            ledger_key: lkey.clone(),
                            etag,
                            checksum: None,
                            version_id: Some(version_id.clone()),
                        };
                        let outcome =
                            futures::FutureExt::shared(Box::pin(
                                async move { Ok::<_, Failed>(done) },
                            )
                                as futures::future::BoxFuture<'static, _>);
                        Ok(complete_answer(
                            i.bucket,
                            i.key,
                            lkey,
                            (outcome, Some(version_id)),
                        ))
                    }
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let recorded = self.ledger.parts(&up.upload_id).await.map_err(write_err)?;
        if asked.is_empty() {
            return Err(s3_error!(MalformedXML, "the part list is empty"));
        }
        let named = named_parts(&asked)?;
        let mut chosen = Vec::with_capacity(named.len());
        for (n, p) in named.iter().enumerate() {
            let num = p.part_number.unwrap_or(0);
            let Some(r) = recorded.iter().find(|r| r.part_number == num) else {
                return Err(s3_error!(InvalidPart, "part {num} was not uploaded"));
            };
            if let Some(e) = &p.e_tag
                && e.value() != r.etag
            {
                return Err(s3_error!(InvalidPart, "part {num} has a different ETag"));
            }
            // An encrypted part's client size is its plaintext size.
            let (part_size, sealed) = match crate::crypto::gateway::sealed_of_part(r) {
                Some(k) => (
                    k.plaintext_size,
                    Some(crate::crypto::gateway::open_part(self.crypto.as_deref(), &k, num).await?),
                ),
                None => (r.size_bytes, None),
            };
            if n + 1 < named.len() && part_size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "part {num} is smaller than 5 MiB"
                ));
            }
            let given = checksum::sent(
                p.checksum_crc32.as_ref(),
                p.checksum_crc32c.as_ref(),
                p.checksum_crc64nvme.as_ref(),
                p.checksum_sha1.as_ref(),
                p.checksum_sha256.as_ref(),
            );
            checksum::check_part(up.attributes.checksum.as_ref(), &given, &r.checksum, num)?;
            let md5 = body::etag_md5(&r.etag)
                .ok_or_else(|| s3_error!(InternalError, "part {num} has a malformed ETag"))?;
            let path = if r.storage_key.is_empty() {
                keys::part_path(&up.upload_id, num)
            } else {
                r.storage_key.clone()
            };
            chosen.push(PartRef {
                number: num,
                size: part_size,
                md5,
                path,
                sealed,
                checksum: r.checksum.clone(),
            });
        }
        let cond = precondition(i.if_match.as_ref(), i.if_none_match.as_ref());
        if !cond.is_empty() {
            self.check_write_conditions(&lkey, i.if_match.as_ref(), i.if_none_match.as_ref())
                .await?;
        }
        // The assembly runs in its own task: a client that hangs up does not cancel it, and
        // s3s keeps the connection alive (whitespace) until the answer is ready.
        // The object keeps its part layout and the upload's checksum (see checksum.rs); a
        // composite that does not match is refused now, before the answer starts.
        let expected = checksum::sent(
            i.checksum_crc32.as_ref(),
            i.checksum_crc32c.as_ref(),
            i.checksum_crc64nvme.as_ref(),
            i.checksum_sha1.as_ref(),
            i.checksum_sha256.as_ref(),
        );
        let mut attributes = up.attributes.clone();
        attributes.parts = chosen
            .iter()
            .map(|p| s3o_store::PartLayout {
                size: p.size,
                checksum: p.checksum.clone(),
            })
            .collect();
        let checksums = checksum::for_assembly(&mut attributes, &expected)?;
        // The answer's headers go out before the assembly ends (a keep-alive body), so the new
        // version's id is chosen now and the commit takes exactly it; a bucket whose
        // versioning state changes meanwhile refuses the commit (OperationAborted, in the
        // body) and the client's retry chooses again.
        let announced = match self.ledger.versioning(&i.bucket).await.map_err(write_err)? {
            Versioning::Unversioned => None,
            Versioning::Suspended => Some(NULL_VERSION_ID.to_owned()),
            Versioning::Enabled => Some(s3o_store::new_version_id()),
        };
        let this = self.clone();
        let (bucket, key) = (i.bucket.to_string(), i.key.to_string());
        let version_id = announced.clone();
        let work = async move {
            this.assemble(
                &bucket, &key, up, chosen, cond, attributes, checksums, version_id,
            )
            .await
            .map_err(|e| Failed::from(&e))
        };
        let running = self
            .completions
            .start(&i.upload_id, announced, Box::pin(work));
        Ok(complete_answer(i.bucket, i.key, lkey, running))
    }

    /// The ETag and version id of the key's current version when it is the object `asked`
    /// (every part named with its ETag) assembles to: the multipart ETag is a digest of the
    /// part MD5s, so a match means a Complete of exactly these parts already committed.
    pub(super) async fn completed_before(
        &self,
        lkey: &str,
        asked: &[CompletedPart],
    ) -> Option<(String, String)> {
        let md5s: Option<Vec<[u8; 16]>> = named_parts(asked)
            .ok()?
            .into_iter()
            .map(|p| p.e_tag.as_ref().and_then(|e| body::etag_md5(e.value())))
            .collect();
        let want = body::multipart_etag(&md5s.filter(|m| !m.is_empty())?);
        let version_id = self.current_with_etag(lkey, &want).await?;
        Some((want, version_id))
    }

    /// The version id (`"null"` for the null version) of the current version of `lkey` when
    /// it carries `etag`.
    pub(super) async fn current_with_etag(&self, lkey: &str, etag: &str) -> Option<String> {
        match self.ledger.latest(lkey).await {
            Ok(crate::ledger::Version::Object { version_id, copies })
                if copies.first().is_some_and(|c| c.meta.etag == etag) =>
            {
                Some(version_id)
            }
            _ => None,
        }
    }

    /// Writes the parts of `up` as one object with `attributes` (a FULL_OBJECT checksum is
    /// computed through `checksums`; routed like any write when the upload's
    /// backend cannot hold it) as the version `version_id` already announced (`None`: no
    /// version), then releases the upload: only a committed object ends it, so a failed
    /// Complete leaves the upload and its parts intact for a retry.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn assemble(
        &self,
        bucket: &str,
        key: &str,
        up: s3o_store::MultipartUpload,
        parts: Vec<PartRef>,
        cond: WritePrecondition,
        attributes: ObjectAttributes,
        checksums: Option<body::ChecksumRequest>,
        version_id: Option<String>,
    ) -> S3Result<Done> {
        let size: i64 = parts.iter().map(|p| p.size).sum();
        let etag = body::multipart_etag(&parts.iter().map(|p| p.md5).collect::<Vec<_>>());
        let target = self
            .ledger
            .pick_backend_for_upload(size, &up.backend_name, self.backends.order())
            .await
            .map_err(write_err)?;
        let source = self.backend(&up.backend_name)?.clone();
        let sizes: Vec<i64> = parts.iter().map(|p| p.size).collect();
        let stream = concat_parts(source, parts);
        let mut meta = ObjectMeta {
            content_type: up.content_type.clone(),
            user_metadata: up.metadata.clone(),
            attributes,
            tags: up.tags.clone(),
            ..ObjectMeta::default()
        };
        record_part_sizes(&mut meta.user_metadata, &sizes);
        let w = Write {
            bucket,
            key,
            size,
            meta,
            expect_md5: None,
            etag: Some(etag.clone()),
            backend: Some(target),
            checksums,
            cond,
            announced: Some(version_id),
        };
        let (meta, _) = match self.write_object(w, stream).await {
            Ok(r) => r,
            Err(e) => {
                // A Complete that committed and was cut off before releasing the upload (or,
                // before parts were released in the ledger, while deleting its parts): its
                // retry finds the object already there and ends the upload.
                if let Some(version_id) = self.current_with_etag(&up.object_key, &etag).await
                    && self.end_upload(&up, "completed upload").await.is_ok()
                {
                    return Ok(Done {
                        ledger_key: up.object_key,
                        etag,
                        checksum: None,
                        version_id: Some(version_id),
                    });
                }
                return Err(e);
            }
        };
        // Committed: the upload is over. Its row goes with its parts' charge, their bytes
        // queued for cleanup in the same transaction, then deleted: a crash in between leaves
        // the queue rows, the cleanup worker's way to every part. A retry is answered from
        // memory, or from the ledger once the upload is gone.
        if let Err(e) = self.end_upload(&up, "completed upload").await {
            tracing::warn!(upload = %up.upload_id, error = %e, "could not release a completed upload; the sweeper will");
        }
        Ok(Done {
            ledger_key: up.object_key,
            etag: meta.etag,
            checksum: meta.attributes.checksum,
            version_id: meta.version_id,
        })
    }

    pub(super) async fn do_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        let up = self.upload_for(&i.bucket, &i.key, &i.upload_id).await?;
        let marker = i.part_number_marker.unwrap_or(0);
        let max = i.max_parts.unwrap_or(1000).clamp(1, 1000);
        let all = self.ledger.parts(&up.upload_id).await.map_err(write_err)?;
        let after: Vec<_> = all.into_iter().filter(|p| p.part_number > marker).collect();
        let truncated = after.len() > max as usize;
        let page: Vec<_> = after.into_iter().take(max as usize).collect();
        let next = page.last().map(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(up.upload_id),
            part_number_marker: Some(marker),
            max_parts: Some(max),
            is_truncated: Some(truncated),
            next_part_number_marker: if truncated { next } else { None },
            parts: Some(
                page.into_iter()
                    .map(|p| Part {
                        part_number: Some(p.part_number),
                        size: Some(if p.encrypted {
                            p.plaintext_size
                        } else {
                            p.size_bytes
                        }),
                        e_tag: Some(ETag::Strong(p.etag)),
                        last_modified: Some(to_s3_time(p.created_at)),
                        ..Part::default()
                    })
                    .collect(),
            ),
            ..ListPartsOutput::default()
        }))
    }

    pub(super) async fn do_list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let bp = keys::bucket_prefix(&i.bucket);
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = i.max_uploads.unwrap_or(1000).clamp(1, 1000);
        let key_marker = i.key_marker.clone().unwrap_or_default();
        let ups = self
            .ledger
            .uploads(&format!("{bp}{prefix}"), 10_000)
            .await
            .map_err(read_err)?;
        let id_marker = i
            .upload_id_marker
            .clone()
            .filter(|m| !m.is_empty() && !key_marker.is_empty());
        // With an upload-id-marker, the marker key's uploads after that id (in listing order)
        // come first; when the marker upload is gone, all of that key's uploads do (a page
        // repeated, never one skipped).
        let marker_seen = id_marker.as_ref().is_none_or(|m| {
            !ups.iter().any(|u| {
                u.upload_id == *m && u.object_key.strip_prefix(&bp) == Some(key_marker.as_str())
            })
        });
        let mut past_marker = marker_seen;
        let mut page = Vec::new();
        let mut truncated = false;
        for u in ups {
            let k = u
                .object_key
                .strip_prefix(&bp)
                .unwrap_or(&u.object_key)
                .to_owned();
            if !key_marker.is_empty() && k.as_str() < key_marker.as_str() {
                continue;
            }
            if !key_marker.is_empty() && k == key_marker {
                match &id_marker {
                    None => continue,
                    Some(m) if !past_marker => {
                        past_marker = u.upload_id == *m;
                        continue;
                    }
                    Some(_) => {}
                }
            }
            if page.len() == max as usize {
                truncated = true;
                break;
            }
            page.push(MultipartUpload {
                key: Some(k),
                upload_id: Some(u.upload_id),
                initiated: Some(to_s3_time(u.created_at)),
                ..MultipartUpload::default()
            });
        }
        let next_key = if truncated {
            page.last().and_then(|u| u.key.clone())
        } else {
            None
        };
        let next_id = if truncated {
            page.last().and_then(|u| u.upload_id.clone())
        } else {
            None
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            uploads: Some(page),
            ..ListMultipartUploadsOutput::default()
        }))
    }

    pub(super) async fn do_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = &req.input;
        match self.upload_for(&i.bucket, &i.key, &i.upload_id).await {
            Err(e) => Err(e),
            Ok(up) => self
                .end_upload(&up, "aborted upload")
                .await
                .map_err(write_err)
                .map(|()| S3Response::new(AbortMultipartUploadOutput::default())),
        }
    }
}

/// The parts a Complete names, in order. A part number listed twice in a row is named by its
/// later entry (the list read as a map, as RGW reads it): two overlapping uploads of one part
/// are completed with the ETag of the one recorded last. Descending numbers are refused.
fn named_parts(asked: &[CompletedPart]) -> S3Result<Vec<&CompletedPart>> {
    let mut named: Vec<&CompletedPart> = Vec::with_capacity(asked.len());
    for p in asked {
        let num = p.part_number.unwrap_or(0);
        let last = named.last().map_or(0, |q| q.part_number.unwrap_or(0));
        if num < 1 || num < last {
            return Err(s3_error!(InvalidPartOrder));
        }
        if num == last {
            named.pop();
        }
        named.push(p);
    }
    Ok(named)
}

/// One part chosen for assembly.
pub(super) struct PartRef {
    number: i32,
    size: i64,
    md5: [u8; 16],
    /// Backend path of its bytes.
    path: String,
    /// The part's DEK, number and plaintext size when it is encrypted.
    sealed: Option<crate::crypto::gateway::PartKey>,
    /// Its recorded checksum (base64); empty when none.
    checksum: String,
}

/// The answer to a Complete whose assembly `outcome` is running or done: s3s sends it when it
/// resolves, keeping the connection alive meanwhile, after the headers, which carry the
/// version id the completion announced. An outcome of another key (an upload id reused with
/// another key) answers `NoSuchUpload`.
pub(super) fn complete_answer(
    bucket: BucketName,
    key: ObjectKey,
    ledger_key: String,
    (outcome, version_id): crate::completions::Running,
) -> S3Response<CompleteMultipartUploadOutput> {
    let header = super::versioning::answered_version(version_id.as_deref(), false);
    let answer = async move {
        let done = outcome.await.map_err(S3Error::from)?;
        if done.ledger_key != ledger_key {
            return Err(s3_error!(NoSuchUpload));
        }
        let sum = checksum::answer(done.checksum.as_ref());
        Ok(CompleteMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            e_tag: (!done.etag.is_empty()).then_some(ETag::Strong(done.etag)),
            checksum_crc32: sum.checksum_crc32,
            checksum_crc32c: sum.checksum_crc32c,
            checksum_crc64nvme: sum.checksum_crc64nvme,
            checksum_sha1: sum.checksum_sha1,
            checksum_sha256: sum.checksum_sha256,
            checksum_type: sum.checksum_type,
            version_id: done.version_id,
            ..CompleteMultipartUploadOutput::default()
        })
    };
    S3Response::new(CompleteMultipartUploadOutput {
        future: Some(Box::pin(answer)),
        version_id: header,
        ..CompleteMultipartUploadOutput::default()
    })
}

/// The parts of an upload read back in order as one stream; each part's bytes are checked
/// against its recorded MD5, so a part replaced under a concurrent Complete fails the whole
/// assembly instead of committing mixed bytes.
pub(super) fn concat_parts(backend: Arc<Backend>, parts: Vec<PartRef>) -> ByteStream {
    let s = futures::stream::iter(parts).then(move |part| {
        let backend = backend.clone();
        let path = keys::path(&part.path);
        let (num, md5) = (part.number, part.md5);
        let sealed = part.sealed;
        async move {
            let r = backend
                .store
                .get(&path)
                .await
                .map_err(|e| Box::new(e) as s3s::StdError)?;
            let hasher = std::sync::Arc::new(std::sync::Mutex::new(Some(md5::Md5::default())));
            let h2 = hasher.clone();
            let inner = r.into_stream().map_err(|e| Box::new(e) as s3s::StdError);
            let inner = crate::crypto::gateway::part_plaintext(Box::pin(inner), sealed.as_ref());
            let checked = inner
                .map(move |item| {
                    if let Ok(b) = &item
                        && let Some(h) = h2.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                    {
                        md5::Digest::update(h, b);
                    }
                    item
                })
                .chain(futures::stream::once(async move {
                    let h = hasher.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let got = h.map(|h| {
                        let mut out = [0u8; 16];
                        out.copy_from_slice(&md5::Digest::finalize(h));
                        out
                    });
                    if got == Some(md5) {
                        Ok(Bytes::new())
                    } else {
                        Err(Box::new(s3_error!(
                            InvalidPart,
                            "part {num} changed during completion"
                        )) as s3s::StdError)
                    }
                }));
            Ok::<_, s3s::StdError>(checked)
        }
    });
    Box::pin(s.try_flatten())
}

/// The `x-amz-copy-source-range` of UploadPartCopy: `bytes=FIRST-LAST`, both given, in order
/// (S3 takes no other form). Returns `(first, last)` inclusive.
pub(super) fn parse_copy_range(text: &str) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "the x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(first), num(last)) {
        (Some(f), Some(l)) if f <= l => Ok((f, l)),
        _ => Err(bad()),
    }
}

/// The reserved user-metadata entry holding a multipart object's part sizes, which GetObject
/// and HeadObject with `partNumber` need once the parts are gone. A `:` cannot appear in an
/// HTTP header name, so no client can send it ([`user_metadata`] drops it from form fields
/// too), and [`metadata_of`] never returns it.
pub(super) const PART_SIZES_KEY: &str = ":s3o-part-sizes";

/// The longest part-size record kept: multipart objects with irregular part sizes beyond it
/// are served whole but not by part number (user metadata shares the ledger's 8 KiB cap).
const MAX_PART_SIZES_TEXT: usize = 2048;

/// Records `sizes` (in part order) as runs `SIZE*COUNT` joined by `,` (a regular upload is one
/// or two runs), when the record fits.
pub(super) fn record_part_sizes(meta: &mut BTreeMap<String, String>, sizes: &[i64]) {
    let mut runs: Vec<(i64, usize)> = Vec::new();
    for &s in sizes {
        match runs.last_mut() {
            Some((size, count)) if *size == s => *count += 1,
            _ => runs.push((s, 1)),
        }
    }
    let text = runs
        .iter()
        .map(|(s, c)| {
            if *c == 1 {
                s.to_string()
            } else {
                format!("{s}*{c}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut with = meta.clone();
    with.insert(PART_SIZES_KEY.to_owned(), text);
    // The record never makes a Complete fail: it is left out when the whole would not fit.
    let fits = with[PART_SIZES_KEY].len() <= MAX_PART_SIZES_TEXT
        && s3o_store::StoredForm {
            user_metadata: with.clone(),
            ..s3o_store::StoredForm::default()
        }
        .user_metadata_json()
        .is_none_or(|j| j.len() <= s3o_store::limits::MAX_USER_METADATA_JSON_BYTES);
    if fits {
        *meta = with;
    }
}

/// The part sizes recorded by [`record_part_sizes`], `None` when absent or malformed.
pub(super) fn part_sizes(meta: &BTreeMap<String, String>) -> Option<Vec<u64>> {
    let text = meta.get(PART_SIZES_KEY)?;
    let mut out = Vec::new();
    for run in text.split(',') {
        let (size, count) = run.split_once('*').unwrap_or((run, "1"));
        let (size, count) = (size.parse::<u64>().ok()?, count.parse::<usize>().ok()?);
        if out.len() + count > 10_000 {
            return None;
        }
        out.extend(std::iter::repeat_n(size, count));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_take_only_first_dash_last() {
        assert_eq!(parse_copy_range("bytes=0-0").unwrap(), (0, 0));
        assert_eq!(parse_copy_range("bytes=5-21").unwrap(), (5, 21));
        for bad in [
            "0-2",
            "bytes=0",
            "bytes=hello-world",
            "bytes=0-bar",
            "bytes=hello-",
            "bytes=0-2,3-5",
            "bytes=-3",
            "bytes=4-2",
            "bytes= 1-2",
        ] {
            let e = parse_copy_range(bad).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn a_repeated_part_number_takes_its_later_entry() {
        let part = |n: i32, e: &str| CompletedPart {
            part_number: Some(n),
            e_tag: Some(ETag::Strong(e.to_owned())),
            ..CompletedPart::default()
        };
        let asked = [part(1, "b"), part(1, "a"), part(2, "c")];
        let named = named_parts(&asked).unwrap();
        let got: Vec<_> = named
            .iter()
            .map(|p| {
                (
                    p.part_number,
                    p.e_tag.as_ref().map(|e| e.value().to_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(1), Some("a".to_owned())),
                (Some(2), Some("c".to_owned()))
            ]
        );
        for bad in [vec![part(2, "x"), part(1, "y")], vec![part(0, "x")]] {
            let e = named_parts(&bad).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidPartOrder);
        }
    }

    #[test]
    fn part_sizes_round_trip_as_runs() {
        let mut meta = BTreeMap::from([("owner".to_owned(), "me".to_owned())]);
        let sizes = [5, 5, 5, 7, 7, 1];
        record_part_sizes(&mut meta, &sizes);
        assert_eq!(meta[PART_SIZES_KEY], "5*3,7*2,1");
        assert_eq!(part_sizes(&meta).unwrap(), vec![5, 5, 5, 7, 7, 1]);
        assert_eq!(meta["owner"], "me");
        // Irregular sizes past the cap are left out rather than failing the Complete.
        let mut big = BTreeMap::new();
        let irregular: Vec<i64> = (0..2000).map(|i| 5_242_880 + i).collect();
        record_part_sizes(&mut big, &irregular);
        assert!(!big.contains_key(PART_SIZES_KEY));
        // Malformed or oversized records read as absent.
        for text in ["x", "5*", "5*20000", "1,,2"] {
            let m = BTreeMap::from([(PART_SIZES_KEY.to_owned(), text.to_owned())]);
            assert_eq!(part_sizes(&m), None, "{text}");
        }
    }
}
