//! PutObject and the write path every object write shares (intent, stream, verify, commit).

use super::*;

/// The S3 condition of `If-Match`/`If-None-Match` as the store's precondition (`*` for any).
pub(super) fn precondition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> WritePrecondition {
    let text = |c: &ETagCondition| match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(t) => t.value().to_owned(),
    };
    WritePrecondition {
        if_match: if_match.map(text),
        if_none_match: if_none_match.map(text),
    }
}

/// The headers a write stores to answer on GET/HEAD, as the client sent them.
#[derive(Default)]
pub(super) struct StoredHeaders<'a> {
    pub(super) cache_control: Option<&'a str>,
    pub(super) content_disposition: Option<&'a str>,
    pub(super) content_encoding: Option<&'a str>,
    pub(super) content_language: Option<&'a str>,
    pub(super) expires: Option<&'a s3s::dto::Timestamp>,
}

/// The stored-header map of a write (lower-case names, see
/// [`s3o_store::ObjectAttributes::headers`]). `aws-chunked` is a transfer detail, not the
/// object's encoding: it is dropped from Content-Encoding (nothing left ⇒ none), as S3 does.
/// Expires is kept as an HTTP date.
pub(super) fn stored_headers(h: &StoredHeaders<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.insert(name.to_owned(), v.to_owned());
        }
    };
    put("cache-control", h.cache_control);
    put("content-disposition", h.content_disposition);
    put("content-language", h.content_language);
    let encoding = h.content_encoding.map(|e| {
        e.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    put("content-encoding", encoding.as_deref());
    let expires = h.expires.and_then(|t| {
        let mut buf = Vec::new();
        t.format(s3s::dto::TimestampFormat::HttpDate, &mut buf)
            .ok()?;
        String::from_utf8(buf).ok()
    });
    put("expires", expires.as_deref());
    out
}

/// One object write: where, how big, what metadata, and what the bytes must hash to.
pub(super) struct Write<'a> {
    pub(super) bucket: &'a str,
    pub(super) key: &'a str,
    pub(super) size: i64,
    pub(super) meta: ObjectMeta,
    /// MD5 the body must have (Content-MD5, or the copy source's).
    pub(super) expect_md5: Option<[u8; 16]>,
    /// ETag to record instead of the body's MD5 (multipart assembly).
    pub(super) etag: Option<String>,
    /// Backend chosen by the caller instead of routing (multipart assembly).
    pub(super) backend: Option<String>,
    /// Client checksums to compute and verify.
    pub(super) checksums: Option<body::ChecksumRequest>,
    /// Preconditions the store decides in the commit transaction.
    pub(super) cond: WritePrecondition,
    /// The version id already announced to the client (multipart Complete; `Some(None)`: no
    /// version): the commit must give exactly that one. `None`: whatever the bucket gives.
    pub(super) announced: Option<Option<String>>,
}

impl GatewayS3 {
    /// Refreshes `intent_id` every heartbeat ([`super::intent_heartbeat`]) so the pending reaper, which abandons
    /// intents older than its `min_age`, leaves a write that is still streaming alone. Never
    /// returns; a failed refresh is logged (the commit then refuses if the reaper won).
    pub(super) async fn heartbeat(&self, intent_id: &str) {
        let ids = [intent_id.to_owned()];
        loop {
            tokio::time::sleep(self.heartbeat).await;
            if let Err(e) = self.ledger.touch_intents(&ids).await {
                tracing::warn!(intent = %intent_id, error = %e, "could not refresh a write intent");
            }
        }
    }

    /// Ends a write that will not be committed: its intent is dropped and its bytes queued in
    /// one ledger transaction, then deleted at once (the queued row completes). When the ledger
    /// cannot answer, the intent stays and the pending reaper abandons it the same way later;
    /// either way the bytes never become the object.
    pub(super) async fn abandon(&self, ledger_key: &str, backend: &str, intent_id: &str) {
        match self
            .ledger
            .abandon_write(intent_id, ledger_key, backend)
            .await
        {
            Ok(queued) => self.remove_displaced(queued, "abandoned").await,
            Err(e) => {
                tracing::warn!(backend = %backend, intent = %intent_id, error = %e, "could not abandon the write now; the pending reaper will");
            }
        }
    }

    /// The write path: route by quota → intent → stream to the backend → verify → commit
    /// (record-and-clear) → delete displaced bytes. Returns the committed metadata.
    pub(super) async fn write_object(
        &self,
        w: Write<'_>,
        body: ByteStream,
    ) -> S3Result<(ObjectMeta, Checksum)> {
        let Write {
            bucket,
            key,
            size,
            mut meta,
            expect_md5,
            etag,
            backend,
            checksums,
            cond,
            announced,
        } = w;
        let mut checksums = match checksums {
            Some(c) => c,
            None => body::ChecksumRequest::new(
                None,
                Checksum::default(),
                None,
                &hyper::HeaderMap::new(),
            )?,
        };
        let ledger_key = &keys::ledger_key(bucket, key);
        // Encryption at rest: the bytes go out sealed and the backend holds `stored` of them;
        // the client's size, ETag and checksums stay the plaintext's.
        let seal = crate::crypto::gateway::seal_write(
            self.crypto.as_deref(),
            bucket,
            size,
            &mut meta,
            &mut checksums.hasher,
        )
        .await?;
        let stored = seal.as_ref().map_or(size, |s| s.stored_size);
        let backend_name = match backend {
            Some(b) => b,
            None => self
                .ledger
                .pick_backend(stored, &self.write_candidates()?)
                .await
                .map_err(write_err)?,
        };
        let backend = self.backend(&backend_name)?.clone();
        meta.storage_key = keys::object_path(bucket, key, &keys::new_version());
        if let Some(s) = &seal {
            s.mark(&mut meta.storage_key);
        }
        let body = match &seal {
            Some(s) => s.encrypt(body),
            None => body,
        };
        let path = keys::path(&meta.storage_key);
        let intent = self
            .ledger
            .begin_write(ledger_key, &backend_name, stored, &meta)
            .await
            .map_err(write_err)?;
        // The heartbeat keeps the reaper off this intent while the body streams, however long
        // that takes.
        let uploaded = {
            let ledger = Arc::clone(&self.ledger);
            let intent_id = intent.clone();
            let record = move |upload_id: String| -> futures::future::BoxFuture<'static, Result<(), String>> {
                let (ledger, intent_id) = (Arc::clone(&ledger), intent_id.clone());
                Box::pin(async move {
                    match ledger.record_backend_upload(&intent_id, &upload_id).await {
                        Ok(true) => Ok(()),
                        Ok(false) => Err("the write's intent is gone".to_owned()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            };
            let upload = body::upload(
                &backend,
                &path,
                body,
                u64::try_from(stored).ok(),
                &mut checksums.hasher,
                Some(&record),
            );
            tokio::pin!(upload);
            tokio::select! {
                r = &mut upload => r,
                () = self.heartbeat(&intent) => unreachable!("the heartbeat never ends"),
            }
        };
        let up = match uploaded {
            Ok(u) => match seal {
                Some(s) => s.plaintext(u, &mut checksums.hasher),
                None => u,
            },
            Err(UploadError::Body(e)) => {
                self.abandon(ledger_key, &backend_name, &intent).await;
                return Err(body_error(e));
            }
            Err(UploadError::Backend(e)) => {
                self.abandon(ledger_key, &backend_name, &intent).await;
                tracing::warn!(backend = %backend_name, error = %e, "backend upload failed");
                return Err(s3_error!(
                    InternalError,
                    "backend {backend_name} failed to store the object"
                ));
            }
        };
        let verified = if i64::try_from(up.size).ok() != Some(size) {
            Err(s3_error!(
                IncompleteBody,
                "body length differs from Content-Length"
            ))
        } else if expect_md5.is_some_and(|m| m != up.md5) {
            Err(s3_error!(BadDigest, "Content-MD5 does not match the body"))
        } else {
            checksums.verify()
        };
        let computed = match verified {
            Ok(c) => c,
            Err(e) => {
                // Refused bytes never become the object, whatever happens to their delete.
                self.abandon(ledger_key, &backend_name, &intent).await;
                return Err(e);
            }
        };
        meta.etag = etag.unwrap_or_else(|| up.etag());
        // The verified checksum is kept with the version, unless the caller already set one
        // (a multipart composite); an upload that asked for an algorithm names it.
        if meta
            .attributes
            .checksum
            .as_ref()
            .is_none_or(|c| c.value.is_empty())
        {
            let algorithm = meta
                .attributes
                .checksum
                .as_ref()
                .map(|c| c.algorithm.clone());
            meta.attributes.checksum = checksum::full_object(&computed, algorithm.as_deref());
        }
        let committed = match &announced {
            Some(version_id) => {
                self.ledger
                    .commit_announced(
                        bucket,
                        ledger_key,
                        &backend_name,
                        stored,
                        &meta,
                        &intent,
                        &cond,
                        version_id.as_deref(),
                    )
                    .await
            }
            None => {
                self.ledger
                    .commit_write(
                        bucket,
                        ledger_key,
                        &backend_name,
                        stored,
                        &meta,
                        &intent,
                        &cond,
                    )
                    .await
            }
        };
        match committed {
            Ok((displaced, version_id)) => {
                meta.version_id = version_id;
                self.remove_displaced(displaced, "overwritten").await;
            }
            Err(e @ StoreError::PendingIntentGone { .. }) => {
                // The reaper abandoned this write meanwhile and queued its path for deletion;
                // bytes that landed after its delete are this request's to remove.
                let ours = Displaced {
                    backend: backend_name.clone(),
                    storage_key: meta.storage_key.clone(),
                    size: stored,
                    claim: None,
                };
                self.remove_displaced(vec![ours], "abandoned").await;
                return Err(write_err(e));
            }
            Err(e) => {
                // Refused (precondition, quota, input), or unknown: if the commit did happen
                // its intent is gone and this finds nothing to abandon; if it did not, the
                // bytes are queued now (or by the reaper when the ledger is back). The
                // previous version is untouched: each write has its own path.
                self.abandon(ledger_key, &backend_name, &intent).await;
                return Err(write_err(e));
            }
        }
        Ok((meta, computed))
    }

    pub(super) async fn do_put(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let checksums = body::ChecksumRequest::new(
            input.checksum_algorithm.as_ref(),
            Checksum {
                checksum_crc32: input.checksum_crc32.clone(),
                checksum_crc32c: input.checksum_crc32c.clone(),
                checksum_sha1: input.checksum_sha1.clone(),
                checksum_sha256: input.checksum_sha256.clone(),
                checksum_crc64nvme: input.checksum_crc64nvme.clone(),
                ..Checksum::default()
            },
            req.trailing_headers,
            &req.headers,
        )?;
        let lkey = keys::ledger_key(&input.bucket, &input.key);
        let expect_md5 = match &input.content_md5 {
            Some(h) => Some(body::content_md5(h).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let body = input.body;
        let size = match (input.content_length, &body) {
            (Some(n), _) => n,
            (None, None) => 0,
            (None, Some(b)) => {
                let hint = s3s::stream::ByteStream::remaining_length(b);
                hint.exact()
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| s3_error!(MissingContentLength))?
            }
        };
        if input.if_match.is_some() || input.if_none_match.is_some() {
            self.check_write_conditions(
                &lkey,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )
            .await?;
        }
        let meta = ObjectMeta {
            content_type: input.content_type.unwrap_or_default(),
            user_metadata: user_metadata(input.metadata),
            attributes: ObjectAttributes {
                headers: stored_headers(&StoredHeaders {
                    cache_control: input.cache_control.as_deref(),
                    content_disposition: input.content_disposition.as_deref(),
                    content_encoding: input.content_encoding.as_deref(),
                    content_language: input.content_language.as_deref(),
                    expires: input.expires.as_ref(),
                }),
                checksum: input
                    .checksum_algorithm
                    .as_ref()
                    .map(|a| checksum::checksum_value(a.as_str(), String::new())),
                parts: Vec::new(),
            },
            tags: tagging::parse_header(input.tagging.as_deref())?,
            ..ObjectMeta::default()
        };
        let stream: ByteStream = match body {
            Some(b) => Box::pin(b),
            None => Box::pin(futures::stream::empty()),
        };
        let w = Write {
            bucket: &input.bucket,
            key: &input.key,
            size,
            meta,
            expect_md5,
            etag: None,
            backend: None,
            checksums: Some(checksums),
            cond: precondition(input.if_match.as_ref(), input.if_none_match.as_ref()),
            announced: None,
        };
        let (meta, sums) = self.write_object(w, stream).await?;
        let kind = meta
            .attributes
            .checksum
            .as_ref()
            .map(|c| ChecksumType::from(c.kind.clone()));
        Ok(S3Response::new(PutObjectOutput {
            checksum_type: kind,
            e_tag: etag_of(&meta),
            size: Some(size),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            version_id: versioning::answered_version(meta.version_id.as_deref(), false),
            ..PutObjectOutput::default()
        }))
    }

    /// If-Match / If-None-Match on writes, checked before any byte moves so a write that
    /// cannot win fails fast; the decision that counts is the store's, in the commit.
    pub(super) async fn check_write_conditions(
        &self,
        lkey: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<()> {
        let current = match self.ledger.copies(lkey).await {
            Ok(c) => Some(found_of(c)),
            Err(StoreError::ObjectNotFound { .. }) => None,
            Err(e) => return Err(write_err(e)),
        };
        if let Some(c) = if_none_match
            && let Some(cur) = &current
        {
            let hit = match c {
                ETagCondition::Any => true,
                ETagCondition::ETag(t) => t.value() == cur.meta.etag,
            };
            if hit {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        if let Some(c) = if_match {
            let ok = match (&current, c) {
                (None, _) => false,
                (Some(_), ETagCondition::Any) => true,
                (Some(cur), ETagCondition::ETag(t)) => t.value() == cur.meta.etag,
            };
            if !ok {
                return Err(if current.is_none() {
                    s3_error!(NoSuchKey)
                } else {
                    s3_error!(PreconditionFailed)
                });
            }
        }
        Ok(())
    }
}

/// The S3 answer for a failed request body: s3s's own error (signature, checksum, length)
/// when it is one, else IncompleteBody.
pub(super) fn body_error(e: s3s::StdError) -> S3Error {
    match e.downcast::<S3Error>() {
        Ok(s3) => *s3,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("mismatch") || msg.contains("Mismatch") {
                s3_error!(BadDigest, "{msg}")
            } else {
                s3_error!(IncompleteBody, "{msg}")
            }
        }
    }
}
