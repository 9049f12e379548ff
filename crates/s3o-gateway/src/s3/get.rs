//! GetObject and HeadObject: the ledger lookup (or a broadcast while it is down),
//! preconditions, ranges and failover across copies.

use super::*;

/// Why a version's bytes could not be opened.
pub(super) enum OpenError {
    /// Every copy answered 404: the version was displaced after the lookup.
    Gone,
    /// Some copy failed otherwise (backend down, timeout).
    Unavailable,
    /// Every copy is on a backend over its monthly usage budget (none was tried).
    OverBudget,
    /// The version is encrypted and cannot be opened here (no key for it).
    Refused(S3Error),
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
            return Err(not_modified(meta, last_modified));
        }
    } else if let Some(t) = if_modified_since
        && lm_secs <= secs(t)
    {
        return Err(not_modified(meta, last_modified));
    }
    Ok(())
}

/// A 304 carries the validators a 200 would have (RFC 9110 §15.4.5): ETag and Last-Modified.
fn not_modified(meta: &ObjectMeta, last_modified: Timestamp) -> S3Error {
    let mut err = s3_error!(NotModified);
    let mut headers = hyper::HeaderMap::new();
    if !meta.etag.is_empty()
        && let Ok(v) = hyper::header::HeaderValue::from_str(&format!("\"{}\"", meta.etag))
    {
        headers.insert(hyper::header::ETAG, v);
    }
    let mut date = Vec::new();
    if to_s3_time(last_modified)
        .format(s3s::dto::TimestampFormat::HttpDate, &mut date)
        .is_ok()
        && let Ok(v) = hyper::header::HeaderValue::from_bytes(&date)
    {
        headers.insert(hyper::header::LAST_MODIFIED, v);
    }
    err.set_headers(headers);
    err
}

/// The `x-amz-copy-source-if-*` conditions of CopyObject and UploadPartCopy: a failed one is
/// 412 whatever the header.
pub(super) fn check_copy_source(
    found: &Found,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&s3s::dto::Timestamp>,
    if_unmodified_since: Option<&s3s::dto::Timestamp>,
) -> S3Result<()> {
    check_preconditions(
        &found.meta,
        found.last_modified,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    )
    .map_err(|e| {
        if *e.code() == S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed)
        } else {
            e
        }
    })
}

/// What a GET/HEAD reads: a byte range (`None`: the whole object) and the part count to
/// answer (`None`: not a part read of a multipart object).
pub(super) type ReadRange = (Option<(u64, u64)>, Option<i32>);

/// The bytes of part `n` of `found` (`partNumber` on GET/HEAD) and its part count (`None` for
/// an object not written by a multipart upload). A single-part object is its own part 1.
pub(super) fn part_range(found: &Found, n: i32) -> S3Result<ReadRange> {
    if !(1..=10_000).contains(&n) {
        return Err(s3_error!(InvalidArgument, "part number must be 1..=10000"));
    }
    let size = u64::try_from(found.size).unwrap_or(0);
    let count = found
        .meta
        .etag
        .rsplit_once('-')
        .and_then(|(_, c)| c.parse::<i32>().ok());
    let no_part = || s3_error!(InvalidPart, "the object has no part {n}");
    let Some(count) = count else {
        return if n == 1 {
            Ok((whole(size), None))
        } else {
            Err(no_part())
        };
    };
    if n > count {
        return Err(no_part());
    }
    match super::multipart::part_sizes(&found.meta.user_metadata) {
        Some(sizes)
            if sizes.len() == usize::try_from(count).unwrap_or(0)
                && sizes.iter().sum::<u64>() == size =>
        {
            let idx = usize::try_from(n - 1).unwrap_or(0);
            let start: u64 = sizes[..idx].iter().sum();
            let end = start + sizes[idx];
            Ok(((start < end).then_some((start, end)), Some(count)))
        }
        _ if count == 1 => Ok((whole(size), Some(1))),
        _ => Err(s3_error!(
            NotImplemented,
            "the part sizes of this object were not recorded (completed before they were kept)"
        )),
    }
}

/// The whole object as a part's range (`None` for an empty object: nothing to range).
fn whole(size: u64) -> Option<(u64, u64)> {
    (size > 0).then_some((0, size))
}

/// The range a GET/HEAD reads: its `Range`, or the part `partNumber` names (never both), with
/// the part count to answer.
pub(super) fn read_range(
    found: &Found,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<ReadRange> {
    let size = u64::try_from(found.size).unwrap_or(0);
    match (range, part_number) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (_, Some(n)) => part_range(found, n),
        (r, None) => Ok((resolve_range(r, size)?, None)),
    }
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
            // The DEK of an encrypted version lives in the ledger only.
            Some((_, o)) if crate::crypto::gateway::is_sealed_path(o.location.as_ref()) => {
                self.metrics.event("broadcast_refused_encrypted");
                Err(s3_error!(
                    ServiceUnavailable,
                    "the object is encrypted and its key is in the ledger, which is unavailable"
                ))
            }
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

    /// Opens the bytes of `found` (range optional), failing over across its copies. A small
    /// plaintext object comes from the read cache when held; otherwise its whole body is read
    /// and, once verified against its ETag, kept there ([`crate::read_cache`]).
    pub(super) async fn open(
        &self,
        found: &Found,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, OpenError> {
        let cache = self.read_cache.as_ref().filter(|c| {
            found.meta.encryption.is_none() && u64::try_from(found.size).is_ok_and(|s| c.takes(s))
        });
        let Some(cache) = cache else {
            return self.open_backend(found, range).await;
        };
        let slice = |body: Bytes| -> ByteStream {
            let part = match range {
                Some((s, e)) => body.slice(s as usize..e as usize),
                None => body,
            };
            Box::pin(futures::stream::once(async move { Ok(part) }))
        };
        let key = &found.meta.storage_key;
        if let Some(body) = cache.get(key)
            && i64::try_from(body.len()).ok() == Some(found.size)
        {
            return Ok(slice(body));
        }
        let mut stream = self.open_backend(found, None).await?;
        // At most the ledger's size is buffered: a longer body is a wrong copy.
        let bound = usize::try_from(found.size).unwrap_or(0);
        let mut body = bytes::BytesMut::with_capacity(bound);
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(b) if body.len() + b.len() <= bound => body.extend_from_slice(&b),
                Ok(_) => {
                    tracing::error!(path = %key, "a copy is longer than the ledger's size");
                    return Err(OpenError::Unavailable);
                }
                Err(e) => {
                    tracing::warn!(path = %key, error = %e, "read failed mid-body");
                    return Err(OpenError::Unavailable);
                }
            }
        }
        let body = body.freeze();
        let verified = i64::try_from(body.len()).ok() == Some(found.size)
            && crate::body::etag_md5(&found.meta.etag)
                .is_some_and(|m| m == crate::body::md5_of(&body));
        if verified {
            cache.insert(key, body.clone());
        } else if crate::body::etag_md5(&found.meta.etag).is_some() {
            tracing::error!(path = %key, size = body.len(), "a copy's bytes do not match the ledger's size and ETag; not cached");
        }
        Ok(slice(body))
    }

    /// [`GatewayS3::open`] from the backends, without the read cache.
    async fn open_backend(
        &self,
        found: &Found,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, OpenError> {
        let path = keys::path(&found.meta.storage_key);
        // A sealed version is read by whole chunks and decrypted (see crate::crypto).
        let sealed = match &found.meta.encryption {
            None => None,
            Some(s) => Some(
                crate::crypto::gateway::ReadPlan::new(self.crypto.as_deref(), s, 0, range)
                    .await
                    .map_err(OpenError::Refused)?,
            ),
        };
        let range = match &sealed {
            Some(plan) => plan.stored_range,
            None => range,
        };
        let mut gone = true;
        let mut over_budget = 0;
        for name in &found.backends {
            let Some(b) = self.backends.get(name) else {
                gone = false;
                continue;
            };
            // A copy whose backend has spent its monthly budget is read only if no other can be.
            if self.backends.over_budget(name) {
                over_budget += 1;
                self.backends.usage().rejected(name);
                continue;
            }
            let opts = GetOptions {
                range: range.map(|(s, e)| GetRange::Bounded(s..e)),
                ..GetOptions::default()
            };
            match b.store.get_opts(&path, opts).await {
                Ok(r) => {
                    let s = r.into_stream().map_err(|e| Box::new(e) as s3s::StdError);
                    let Some(plan) = &sealed else {
                        return Ok(Box::pin(s));
                    };
                    match plan.decrypt(Box::pin(s)).await {
                        Ok(s) => return Ok(s),
                        Err(e) => {
                            gone = false;
                            tracing::error!(backend = %name, path = %path, error = %e, "encrypted copy does not decrypt; trying the next copy");
                            self.metrics.event("read_failover");
                        }
                    }
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
        Err(if over_budget > 0 && over_budget == found.backends.len() {
            OpenError::OverBudget
        } else if gone {
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
    /// `version`: the version asked for (S3 `versionId`), else the latest.
    pub(super) async fn read_version_at<T>(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        admit: impl Fn(&Found) -> S3Result<(T, Option<(u64, u64)>)>,
    ) -> S3Result<(Found, T, ByteStream)> {
        let mut tried: Option<String> = None;
        for _ in 0..READ_ATTEMPTS {
            let found = self.lookup_at(bucket, key, version).await?;
            let (extra, range) = admit(&found)?;
            match self.open(&found, range).await {
                Ok(stream) => return Ok((found, extra, stream)),
                Err(OpenError::Refused(e)) => return Err(e),
                Err(OpenError::Gone) if tried.as_ref() != Some(&found.meta.storage_key) => {
                    self.metrics.event("read_retry_displaced");
                    tried = Some(found.meta.storage_key.clone());
                }
                Err(OpenError::OverBudget) => {
                    return Err(mapped_error(&s3o_store::S3Error::USAGE_LIMIT_EXCEEDED));
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
            .read_version_at(&i.bucket, &i.key, i.version_id.as_deref(), |found| {
                check_preconditions(
                    &found.meta,
                    found.last_modified,
                    i.if_match.as_ref(),
                    i.if_none_match.as_ref(),
                    i.if_modified_since.as_ref(),
                    i.if_unmodified_since.as_ref(),
                )?;
                let (range, parts) = read_range(found, i.range.as_ref(), i.part_number)?;
                Ok(((range, parts), range))
            })
            .await?;
        let (range, parts_count) = range;
        let size = u64::try_from(found.size).unwrap_or(0);
        let (len, content_range) = match range {
            Some((s, e)) => (e - s, Some(content_range(s, e, size))),
            None => (size, None),
        };
        let blob = StreamingBlob::wrap(sync_wrapper::SyncStream::new(
            stream.map_err(std::io::Error::other),
        ));
        let h = Served::of(
            &found.meta,
            i.checksum_mode.as_ref(),
            range.is_none(),
            i.part_number,
        );
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
            parts_count,
            version_id: versioning::answered_version(
                found.meta.version_id.as_deref(),
                i.version_id.is_some(),
            ),
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
        let found = self
            .lookup_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        check_preconditions(
            &found.meta,
            found.last_modified,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let size = u64::try_from(found.size).unwrap_or(0);
        let (range, parts_count) = read_range(&found, i.range.as_ref(), i.part_number)?;
        let (len, content_range) = match range {
            Some((s, e)) => (e - s, Some(content_range(s, e, size))),
            None => (size, None),
        };
        let h = Served::of(
            &found.meta,
            i.checksum_mode.as_ref(),
            range.is_none(),
            i.part_number,
        );
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
            parts_count,
            version_id: versioning::answered_version(
                found.meta.version_id.as_deref(),
                i.version_id.is_some(),
            ),
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
    /// `part`: the `partNumber` asked for; a multipart object answers that part's checksum
    /// (and the object's checksum type) with it, as S3 does whatever the checksum mode.
    pub(super) fn of(
        meta: &ObjectMeta,
        mode: Option<&ChecksumMode>,
        whole: bool,
        part: Option<i32>,
    ) -> Served {
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
            checksum: match (part_checksum(meta, part), enabled && whole) {
                (Some(c), _) => checksum::answer(Some(&c)),
                (None, true) => checksum::answer(meta.attributes.checksum.as_ref()),
                (None, false) => Checksum::default(),
            },
        }
    }
}

/// Part `part`'s recorded checksum in the object's algorithm and type, when it has one.
fn part_checksum(meta: &ObjectMeta, part: Option<i32>) -> Option<s3o_store::ObjectChecksum> {
    let n = usize::try_from(part?).ok()?.checked_sub(1)?;
    let object = meta.attributes.checksum.as_ref()?;
    let layout = meta.attributes.parts.get(n)?;
    (!layout.checksum.is_empty()).then(|| s3o_store::ObjectChecksum {
        value: layout.checksum.clone(),
        ..object.clone()
    })
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
        // An encrypted copy stores more bytes than the client's object has.
        size: first
            .meta
            .encryption
            .as_ref()
            .map_or(first.size, |e| e.plaintext_size),
        last_modified: first.last_modified,
        meta: first.meta,
        backends: copies.into_iter().map(|c| c.backend).collect(),
    }
}
