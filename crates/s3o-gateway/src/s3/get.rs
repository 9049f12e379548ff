//! GetObject and HeadObject: the ledger lookup (or a broadcast while it is down),
//! preconditions, ranges and failover across copies.

use super::*;

/// Why a version's bytes could not be opened.
pub(super) enum OpenError {
    /// Every copy answered 404: the version was displaced after the lookup.
    Gone,
    /// Some copy failed otherwise (backend down, timeout).
    Unavailable,
}

/// Evaluates GET/HEAD preconditions against the ledger's ETag and Last-Modified, in RFC 9110
/// order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
pub(super) fn check_preconditions(
    meta: &ObjectMeta,
    last_modified: Timestamp,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&s3s::dto::Timestamp>,
    if_unmodified_since: Option<&s3s::dto::Timestamp>,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => !meta.etag.is_empty() && t.value() == meta.etag,
    };
    // HTTP dates have whole seconds: compare at that precision.
    let lm_secs = last_modified.as_micros().div_euclid(1_000_000);
    let secs = |t: &s3s::dto::Timestamp| {
        let st: std::time::SystemTime = time::OffsetDateTime::from(t.clone()).into();
        Timestamp::from_system_time(st)
            .as_micros()
            .div_euclid(1_000_000)
    };
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since
        && lm_secs > secs(t)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since
        && lm_secs <= secs(t)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// A byte range resolved against the object size: `(start, end_exclusive)`.
pub(super) fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<Option<(u64, u64)>> {
    match range {
        None => Ok(None),
        // A suffix range of an empty object has no byte to name: answered whole (200), as S3
        // does, instead of an empty range no backend can serve.
        Some(Range::Suffix { length }) if size == 0 && *length > 0 => Ok(None),
        Some(r) => {
            let unsatisfiable =
                || s3_error!(InvalidRange, "the requested range is not satisfiable");
            let r = r.check(size).map_err(|_| unsatisfiable())?;
            if r.start >= r.end {
                return Err(unsatisfiable());
            }
            Ok(Some((r.start, r.end)))
        }
    }
}

pub(super) fn content_range(start: u64, end: u64, size: u64) -> String {
    format!("bytes {start}-{}/{size}", end.saturating_sub(1))
}

impl GatewayS3 {
    /// Finds the version to read: the ledger's copies, or a broadcast when it is down.
    pub(super) async fn lookup(&self, bucket: &str, key: &str) -> S3Result<Found> {
        match self.ledger.copies(&keys::ledger_key(bucket, key)).await {
            Ok(copies) => Ok(found_of(copies)),
            Err(e) if is_outage(&e) => {
                self.metrics.event("broadcast_read");
                self.broadcast(bucket, key).await
            }
            Err(e) => Err(read_err(e)),
        }
    }

    /// Asks every backend for the newest version of `key` (ledger down). Versions sort by
    /// write time, so the newest path wins.
    pub(super) async fn broadcast(&self, bucket: &str, key: &str) -> S3Result<Found> {
        let dir = Path::parse(keys::object_dir(bucket, key)).map_err(|_| s3_error!(NoSuchKey))?;
        let probes = self.backends.all().map(|b| {
            let dir = dir.clone();
            async move {
                let listed = b.store.list_with_delimiter(Some(&dir)).await.ok()?;
                listed
                    .objects
                    .into_iter()
                    .filter(|o| o.location.filename().is_some_and(|f| f.starts_with('@')))
                    .max_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()))
                    .map(|o| (b.name.clone(), o))
            }
        });
        let best = futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .max_by(|a, b| a.1.location.as_ref().cmp(b.1.location.as_ref()));
        match best {
            Some((backend, o)) => Ok(Found {
                size: i64::try_from(o.size).unwrap_or(i64::MAX),
                last_modified: Timestamp::from_system_time(o.last_modified.into()),
                meta: ObjectMeta {
                    storage_key: o.location.to_string(),
                    ..ObjectMeta::default()
                },
                backends: vec![backend],
            }),
            None => Err(s3_error!(NoSuchKey)),
        }
    }

    /// Opens the bytes of `found` (range optional), failing over across its copies.
    pub(super) async fn open(
        &self,
        found: &Found,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, OpenError> {
        let path = keys::path(&found.meta.storage_key);
        let mut gone = true;
        for name in &found.backends {
            let Some(b) = self.backends.get(name) else {
                gone = false;
                continue;
            };
            let opts = GetOptions {
                range: range.map(|(s, e)| GetRange::Bounded(s..e)),
                ..GetOptions::default()
            };
            match b.store.get_opts(&path, opts).await {
                Ok(r) => {
                    let s = r.into_stream().map_err(|e| Box::new(e) as s3s::StdError);
                    return Ok(Box::pin(s));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    self.metrics.event("read_failover");
                }
                Err(e) => {
                    gone = false;
                    tracing::warn!(backend = %name, path = %path, error = %e, "read failed; trying the next copy");
                    self.metrics.event("read_failover");
                }
            }
        }
        Err(if gone {
            OpenError::Gone
        } else {
            OpenError::Unavailable
        })
    }

    /// Looks `key` up, checks `admit` (preconditions, range) against the version found and
    /// opens its bytes. A version whose bytes are all gone was displaced by an overwrite or
    /// delete committed after the lookup: the ledger is read again (at most
    /// [`READ_ATTEMPTS`] times, while it names another version), so a read racing a write
    /// answers the old or the new version, or 404, never 503.
    pub(super) async fn read_version<T>(
        &self,
        bucket: &str,
        key: &str,
        admit: impl Fn(&Found) -> S3Result<(T, Option<(u64, u64)>)>,
    ) -> S3Result<(Found, T, ByteStream)> {
        let mut tried: Option<String> = None;
        for _ in 0..READ_ATTEMPTS {
            let found = self.lookup(bucket, key).await?;
            let (extra, range) = admit(&found)?;
            match self.open(&found, range).await {
                Ok(stream) => return Ok((found, extra, stream)),
                Err(OpenError::Gone) if tried.as_ref() != Some(&found.meta.storage_key) => {
                    self.metrics.event("read_retry_displaced");
                    tried = Some(found.meta.storage_key.clone());
                }
                Err(_) => break,
            }
        }
        Err(s3_error!(
            ServiceUnavailable,
            "no copy of the object is readable right now"
        ))
    }

    pub(super) async fn do_get(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let (found, range, stream) = self
            .read_version(&i.bucket, &i.key, |found| {
                check_preconditions(
                    &found.meta,
                    found.last_modified,
                    i.if_match.as_ref(),
                    i.if_none_match.as_ref(),
                    i.if_modified_since.as_ref(),
                    i.if_unmodified_since.as_ref(),
                )?;
                let size = u64::try_from(found.size).unwrap_or(0);
                let range = resolve_range(i.range.as_ref(), size)?;
                Ok((range, range))
            })
            .await?;
        let size = u64::try_from(found.size).unwrap_or(0);
        let (len, content_range) = match range {
            Some((s, e)) => (e - s, Some(content_range(s, e, size))),
            None => (size, None),
        };
        let blob = StreamingBlob::wrap(sync_wrapper::SyncStream::new(
            stream.map_err(std::io::Error::other),
        ));
        let h = Served::of(&found.meta, i.checksum_mode.as_ref(), range.is_none());
        let tag_count = i32::try_from(found.meta.tags.len()).ok().filter(|n| *n > 0);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(blob),
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            // response-* overrides win over what is stored.
            content_type: Some(
                i.response_content_type
                    .unwrap_or_else(|| served_content_type(&found.meta.content_type)),
            ),
            cache_control: i.response_cache_control.or(h.cache_control),
            content_disposition: i.response_content_disposition.or(h.content_disposition),
            content_encoding: i.response_content_encoding.or(h.content_encoding),
            content_language: i.response_content_language.or(h.content_language),
            expires: i.response_expires.or(h.expires),
            checksum_crc32: h.checksum.checksum_crc32,
            checksum_crc32c: h.checksum.checksum_crc32c,
            checksum_crc64nvme: h.checksum.checksum_crc64nvme,
            checksum_sha1: h.checksum.checksum_sha1,
            checksum_sha256: h.checksum.checksum_sha256,
            checksum_type: h.checksum.checksum_type,
            tag_count,
            e_tag: etag_of(&found.meta),
            last_modified: Some(to_s3_time(found.last_modified)),
            metadata: metadata_of(&found.meta),
            ..GetObjectOutput::default()
        }))
    }

    pub(super) async fn do_head(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        // Answered from the ledger alone: no backend call.
        let found = self.lookup(&i.bucket, &i.key).await?;
        check_preconditions(
            &found.meta,
            found.last_modified,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let size = u64::try_from(found.size).unwrap_or(0);
        let range = resolve_range(i.range.as_ref(), size)?;
        let (len, content_range) = match range {
            Some((s, e)) => (e - s, Some(content_range(s, e, size))),
            None => (size, None),
        };
        let h = Served::of(&found.meta, i.checksum_mode.as_ref(), range.is_none());
        let mut resp = S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            content_type: Some(served_content_type(&found.meta.content_type)),
            cache_control: h.cache_control,
            content_disposition: h.content_disposition,
            content_encoding: h.content_encoding,
            content_language: h.content_language,
            expires: h.expires,
            checksum_crc32: h.checksum.checksum_crc32,
            checksum_crc32c: h.checksum.checksum_crc32c,
            checksum_crc64nvme: h.checksum.checksum_crc64nvme,
            checksum_sha1: h.checksum.checksum_sha1,
            checksum_sha256: h.checksum.checksum_sha256,
            checksum_type: h.checksum.checksum_type,
            e_tag: etag_of(&found.meta),
            last_modified: Some(to_s3_time(found.last_modified)),
            metadata: metadata_of(&found.meta),
            ..HeadObjectOutput::default()
        });
        // HeadObjectOutput has no tag count field: the header is added here.
        if let Some((name, value)) = tagging::count_header(&found.meta.tags) {
            resp.headers.insert(name, value);
        }
        Ok(resp)
    }
}

/// What a GET/HEAD answers from a version's stored attributes: its stored headers, and its
/// checksum when the client asked (`x-amz-checksum-mode: ENABLED`) for the whole object.
pub(super) struct Served {
    pub(super) cache_control: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) expires: Option<s3s::dto::Timestamp>,
    pub(super) checksum: Checksum,
}

impl Served {
    pub(super) fn of(meta: &ObjectMeta, mode: Option<&ChecksumMode>, whole: bool) -> Served {
        let header = |name: &str| meta.attributes.headers.get(name).cloned();
        let enabled = mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        Served {
            cache_control: header("cache-control"),
            content_disposition: header("content-disposition"),
            content_encoding: header("content-encoding"),
            content_language: header("content-language"),
            expires: header("expires").and_then(|e| {
                s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, &e).ok()
            }),
            checksum: if enabled && whole {
                checksum::answer(meta.attributes.checksum.as_ref())
            } else {
                Checksum::default()
            },
        }
    }
}

/// The Content-Type a GET/HEAD answers: the stored one, or S3's default for objects
/// stored without one.
pub(super) fn served_content_type(stored: &str) -> String {
    if stored.is_empty() {
        "binary/octet-stream".to_owned()
    } else {
        stored.to_owned()
    }
}

pub(super) fn found_of(copies: Vec<Copy>) -> Found {
    // Copies of one key are the same version (replicas); the first holds the metadata.
    let first = copies[0].clone();
    Found {
        size: first.size,
        last_modified: first.last_modified,
        meta: first.meta,
        backends: copies.into_iter().map(|c| c.backend).collect(),
    }
}
