//! Bodies: streaming a request body to a backend with bounded memory while hashing it, and
//! the ETag arithmetic.

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload, WriteMultipart};

use crate::backends::Backend;

/// Parts kept in flight per streamed upload: with one part uploading while the next fills,
/// a request holds at most about two chunks of memory, whatever the object size.
const PARTS_IN_FLIGHT: usize = 1;

/// What an upload wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// Bytes written.
    pub(crate) size: u64,
    /// MD5 of those bytes.
    pub(crate) md5: [u8; 16],
}

impl Uploaded {
    /// The single-PUT ETag: hex MD5.
    pub(crate) fn etag(&self) -> String {
        hex::encode(self.md5)
    }
}

/// Why an upload failed; nothing is left on the backend in either case.
#[derive(Debug)]
pub(crate) enum UploadError {
    /// The client's body failed (bad signature, checksum, truncated): s3s reports these as a
    /// stream error at the end of the body.
    Body(s3s::StdError),
    /// The backend refused or failed.
    Backend(object_store::Error),
}

/// Records the id of a backend multipart upload before any part is sent (with the write's
/// intent), so that whoever ends the intent after a crash can abort it. An error aborts the
/// upload and fails the write.
pub(crate) type RecordUpload<'a> =
    &'a (dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Send + Sync);

/// Streams `body` to `path` on `backend`. Bodies up to one chunk go in one PUT; longer ones
/// as a backend multipart upload of equal chunks, so memory stays at about two chunks. On
/// any error the partial upload is aborted. `checksums` sees every byte as well. A body whose
/// length `len` is known and within the backend's `single_put_max_bytes` goes to an S3
/// backend as one streamed PUT instead ([`crate::single_put`]); it must have exactly `len`
/// bytes (else [`UploadError::Body`] with IncompleteBody). With
/// `record`, a backend that exposes its multipart uploads (S3) has the upload's id recorded
/// before its first part goes out; such a backend streams through its low-level multipart API
/// either way, a local directory through object_store's `WriteMultipart`.
pub(crate) async fn upload<S>(
    backend: &Backend,
    path: &Path,
    body: S,
    len: Option<u64>,
    checksums: &mut s3s::checksum::ChecksumHasher,
    record: Option<RecordUpload<'_>>,
) -> Result<Uploaded, UploadError>
where
    S: Stream<Item = Result<Bytes, s3s::StdError>> + Send,
{
    if let (Some(len), Some(single)) = (len, &backend.single_put)
        && len > backend.chunk as u64
        && len <= single.max
    {
        let mut hasher = Md5::new();
        let mut size: u64 = 0;
        let seen = body.inspect(|item| {
            if let Ok(b) = item {
                hasher.update(b);
                checksums.update(b);
                size += b.len() as u64;
            }
        });
        single.put(&backend.meter, path, len, seen).await?;
        return Ok(Uploaded {
            size,
            md5: digest(hasher),
        });
    }
    if let Some(mp) = &backend.multipart {
        return upload_tracked(backend, mp, path, body, checksums, record).await;
    }
    let chunk = backend.chunk;
    let mut body = std::pin::pin!(body);
    let mut hasher = Md5::new();
    let mut size: u64 = 0;
    let mut buf = BytesMut::new();
    let mut writer: Option<WriteMultipart> = None;
    while let Some(item) = body.next().await {
        let bytes = match item {
            Ok(b) => b,
            Err(e) => {
                if let Some(w) = writer {
                    let _ = w.abort().await;
                }
                return Err(UploadError::Body(e));
            }
        };
        hasher.update(&bytes);
        checksums.update(&bytes);
        size += bytes.len() as u64;
        match writer.as_mut() {
            Some(w) => {
                w.put(bytes);
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    if let Some(w) = writer {
                        let _ = w.abort().await;
                    }
                    return Err(UploadError::Backend(e));
                }
            }
            None => {
                buf.extend_from_slice(&bytes);
                if buf.len() > chunk {
                    let upload = backend
                        .store
                        .put_multipart(path)
                        .await
                        .map_err(UploadError::Backend)?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, chunk);
                    w.put(std::mem::take(&mut buf).freeze());
                    if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        let _ = w.abort().await;
                        return Err(UploadError::Backend(e));
                    }
                    writer = Some(w);
                }
            }
        }
    }
    match writer {
        Some(w) => {
            w.finish().await.map_err(UploadError::Backend)?;
        }
        None => put_whole(backend, path, PutPayload::from(buf.freeze())).await?,
    }
    Ok(Uploaded {
        size,
        md5: digest(hasher),
    })
}

/// [`upload`] through the backend's low-level multipart API, whose upload id is recorded (by
/// `record`, when given) before the first part is sent. One part uploads while the next fills.
async fn upload_tracked<S>(
    backend: &Backend,
    mp: &std::sync::Arc<dyn MultipartStore>,
    path: &Path,
    body: S,
    checksums: &mut s3s::checksum::ChecksumHasher,
    record: Option<RecordUpload<'_>>,
) -> Result<Uploaded, UploadError>
where
    S: Stream<Item = Result<Bytes, s3s::StdError>> + Send,
{
    type PartFuture = BoxFuture<'static, object_store::Result<PartId>>;
    let chunk = backend.chunk;
    let mut body = std::pin::pin!(body);
    let mut hasher = Md5::new();
    let mut size: u64 = 0;
    let mut buf = Pending::default();
    let mut open: Option<object_store::MultipartId> = None;
    let mut parts: Vec<PartId> = Vec::new();
    let mut in_flight: Option<PartFuture> = None;
    // Ends an open upload after a failure; the caller's intent still names it if this fails.
    let abort = |id: Option<object_store::MultipartId>| {
        let (mp, path) = (mp.clone(), path.clone());
        async move {
            if let Some(id) = id
                && let Err(e) = mp.abort_multipart(&path, &id).await
            {
                tracing::warn!(path = %path, error = %e, "could not abort a backend multipart upload");
            }
        }
    };
    let send = |id: &object_store::MultipartId, idx: usize, data: PutPayload| -> PartFuture {
        let (mp, path, id) = (mp.clone(), path.clone(), id.clone());
        Box::pin(async move { mp.put_part(&path, &id, idx, data).await })
    };
    loop {
        let item = body.next().await;
        let bytes = match item {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                drop(in_flight.take());
                abort(open.take()).await;
                return Err(UploadError::Body(e));
            }
            None => None,
        };
        if let Some(b) = &bytes {
            hasher.update(b);
            checksums.update(b);
            size += b.len() as u64;
            buf.push(b.clone());
        }
        let ended = bytes.is_none();
        if open.is_none() {
            if ended {
                break;
            }
            if buf.len() <= chunk {
                continue;
            }
            let id = mp
                .create_multipart(path)
                .await
                .map_err(UploadError::Backend)?;
            let recorded = match record {
                Some(record) => record(id.clone()).await,
                None => Ok(()),
            };
            if let Err(e) = recorded {
                abort(Some(id)).await;
                return Err(UploadError::Backend(object_store::Error::Generic {
                    store: "ledger",
                    source: e.into(),
                }));
            }
            open = Some(id);
        }
        let Some(id) = open.clone() else { break };
        // Full chunks go as parts; what is left at the end is the (shorter) last part.
        while buf.len() >= chunk || (ended && !buf.is_empty()) {
            let take = buf.len().min(chunk);
            let data = buf.take(take);
            if let Some(f) = in_flight.take() {
                match f.await {
                    Ok(p) => parts.push(p),
                    Err(e) => {
                        abort(open.take()).await;
                        return Err(UploadError::Backend(e));
                    }
                }
            }
            in_flight = Some(send(&id, parts.len(), data));
        }
        if ended {
            break;
        }
    }
    match open {
        None => {
            let whole = buf.len();
            put_whole(backend, path, buf.take(whole)).await?;
        }
        Some(id) => {
            if let Some(f) = in_flight.take() {
                match f.await {
                    Ok(p) => parts.push(p),
                    Err(e) => {
                        abort(Some(id)).await;
                        return Err(UploadError::Backend(e));
                    }
                }
            }
            if let Err(e) = mp.complete_multipart(path, &id, parts).await {
                abort(Some(id)).await;
                return Err(UploadError::Backend(e));
            }
        }
    }
    Ok(Uploaded {
        size,
        md5: digest(hasher),
    })
}

/// Body bytes received and not yet sent, kept as the pieces they arrived in: a chunk is cut
/// from them without copying (the profile of the PUT path showed the copy into one buffer).
#[derive(Default)]
struct Pending {
    pieces: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl Pending {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.pieces.push_back(b);
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first `n` bytes (at most what is held), as one payload of the same pieces.
    fn take(&mut self, n: usize) -> PutPayload {
        let mut out = Vec::new();
        let mut want = n.min(self.len);
        self.len -= want;
        while want > 0 {
            let Some(mut piece) = self.pieces.pop_front() else {
                break;
            };
            if piece.len() > want {
                self.pieces.push_front(piece.split_off(want));
            }
            want -= piece.len();
            out.push(piece);
        }
        out.into_iter().collect()
    }
}

/// A body that fit in one chunk, in one PUT.
async fn put_whole(backend: &Backend, path: &Path, payload: PutPayload) -> Result<(), UploadError> {
    backend
        .store
        .put(path, payload)
        .await
        .map(|_| ())
        .map_err(UploadError::Backend)
}

fn digest(h: Md5) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize());
    out
}

/// MD5 of `data`.
pub(crate) fn md5_of(data: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(data);
    digest(h)
}

/// The multipart ETag: hex MD5 of the concatenated binary part MD5s, then `-N`.
pub(crate) fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex::encode(digest(h)), part_md5s.len())
}

/// Decodes a `Content-MD5` header (base64 of 16 bytes). Malformed ⇒ `None`.
pub(crate) fn content_md5(header: &str) -> Option<[u8; 16]> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .ok()?;
    raw.try_into().ok()
}

/// Decodes a part ETag as a client echoes it (`"hex"` or `hex`) into its MD5.
pub(crate) fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let raw = hex::decode(etag.trim_matches('"')).ok()?;
    raw.try_into().ok()
}

/// The `x-amz-checksum-*` values a client asked for: which to compute, and the values it sent
/// in headers (trailer values are read after the body).
pub(crate) struct ChecksumRequest {
    /// Hashers of the algorithms in play.
    pub(crate) hasher: s3s::checksum::ChecksumHasher,
    /// Values sent as headers.
    pub(crate) sent: s3s::dto::Checksum,
    /// Trailers of an aws-chunked body, readable once the body has ended.
    pub(crate) trailers: Option<s3s::TrailingHeaders>,
}

impl ChecksumRequest {
    /// Computes every algorithm named by `algorithm`, by a value in `sent`, or by the
    /// `x-amz-trailer` header of `headers` (a checksum that will arrive as a trailer).
    pub(crate) fn new(
        algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
        sent: s3s::dto::Checksum,
        trailers: Option<s3s::TrailingHeaders>,
        headers: &hyper::HeaderMap,
    ) -> s3s::S3Result<Self> {
        use s3s::dto::ChecksumAlgorithm as A;
        let mut h = s3s::checksum::ChecksumHasher::default();
        let (mut crc32, mut crc32c, mut sha1, mut sha256, mut crc64) = (
            sent.checksum_crc32.is_some(),
            sent.checksum_crc32c.is_some(),
            sent.checksum_sha1.is_some(),
            sent.checksum_sha256.is_some(),
            sent.checksum_crc64nvme.is_some(),
        );
        let announced = headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect::<Vec<_>>();
        for t in &announced {
            match t.as_str() {
                "x-amz-checksum-crc32" => crc32 = true,
                "x-amz-checksum-crc32c" => crc32c = true,
                "x-amz-checksum-sha1" => sha1 = true,
                "x-amz-checksum-sha256" => sha256 = true,
                "x-amz-checksum-crc64nvme" => crc64 = true,
                _ => {}
            }
        }
        if let Some(a) = algorithm {
            match a.as_str() {
                A::CRC32 => crc32 = true,
                A::CRC32C => crc32c = true,
                A::SHA1 => sha1 = true,
                A::SHA256 => sha256 = true,
                A::CRC64NVME => crc64 = true,
                other => {
                    return Err(s3s::s3_error!(
                        InvalidArgument,
                        "unsupported checksum algorithm {other}"
                    ));
                }
            }
        }
        if crc32 {
            h.crc32 = Some(Default::default());
        }
        if crc32c {
            h.crc32c = Some(Default::default());
        }
        if sha1 {
            h.sha1 = Some(Default::default());
        }
        if sha256 {
            h.sha256 = Some(Default::default());
        }
        if crc64 {
            h.crc64nvme = Some(Default::default());
        }
        Ok(ChecksumRequest {
            hasher: h,
            sent,
            trailers,
        })
    }

    /// Compares what was computed with what the client sent (headers, then trailers);
    /// returns the computed values. A mismatch is `BadDigest`.
    pub(crate) fn verify(self) -> s3s::S3Result<s3s::dto::Checksum> {
        let got = self.hasher.finalize();
        let mut sent = self.sent;
        if let Some(t) = self.trailers.and_then(|t| t.take()) {
            let get = |name: &str| t.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            sent.checksum_crc32 = sent.checksum_crc32.or_else(|| get("x-amz-checksum-crc32"));
            sent.checksum_crc32c = sent
                .checksum_crc32c
                .or_else(|| get("x-amz-checksum-crc32c"));
            sent.checksum_sha1 = sent.checksum_sha1.or_else(|| get("x-amz-checksum-sha1"));
            sent.checksum_sha256 = sent
                .checksum_sha256
                .or_else(|| get("x-amz-checksum-sha256"));
            sent.checksum_crc64nvme = sent
                .checksum_crc64nvme
                .or_else(|| get("x-amz-checksum-crc64nvme"));
        }
        let pairs = [
            ("crc32", &sent.checksum_crc32, &got.checksum_crc32),
            ("crc32c", &sent.checksum_crc32c, &got.checksum_crc32c),
            ("sha1", &sent.checksum_sha1, &got.checksum_sha1),
            ("sha256", &sent.checksum_sha256, &got.checksum_sha256),
            (
                "crc64nvme",
                &sent.checksum_crc64nvme,
                &got.checksum_crc64nvme,
            ),
        ];
        for (name, s, g) in pairs {
            if let Some(s) = s
                && Some(s) != g.as_ref()
            {
                return Err(s3s::s3_error!(
                    BadDigest,
                    "x-amz-checksum-{name} does not match the body"
                ));
            }
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_pieces_cut_exactly_without_reordering() {
        let mut p = Pending::default();
        for piece in [&b"abc"[..], b"", b"defgh", b"ij"] {
            p.push(Bytes::copy_from_slice(piece));
        }
        assert_eq!(p.len(), 10);
        let first: Vec<u8> = p.take(4).into_iter().flatten().collect();
        assert_eq!(first, b"abcd");
        let second: Vec<u8> = p.take(5).into_iter().flatten().collect();
        assert_eq!(second, b"efghi");
        assert_eq!(p.len(), 1);
        let rest: Vec<u8> = p.take(100).into_iter().flatten().collect();
        assert_eq!(rest, b"j");
        assert!(p.is_empty());
        assert_eq!(p.take(3).content_length(), 0);
    }

    #[test]
    fn single_put_etag_is_hex_md5() {
        let u = Uploaded {
            size: 5,
            md5: md5_of(b"hello"),
        };
        assert_eq!(u.etag(), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s_dash_n() {
        let a = md5_of(b"part one");
        let b = md5_of(b"part two");
        let mut cat = Vec::new();
        cat.extend_from_slice(&a);
        cat.extend_from_slice(&b);
        let expect = format!("{}-2", hex::encode(md5_of(&cat)));
        assert_eq!(multipart_etag(&[a, b]), expect);
        assert!(multipart_etag(&[a]).ends_with("-1"));
    }

    #[test]
    fn client_checksums_are_verified() {
        let sent = s3s::dto::Checksum {
            checksum_crc32: Some("NhCmhg==".into()), // CRC32 of "hello"
            ..Default::default()
        };
        let mut ok = ChecksumRequest::new(None, sent.clone(), None, &Default::default()).unwrap();
        ok.hasher.update(b"hello");
        assert_eq!(
            ok.verify().unwrap().checksum_crc32.as_deref(),
            Some("NhCmhg==")
        );
        let mut bad = ChecksumRequest::new(None, sent, None, &Default::default()).unwrap();
        bad.hasher.update(b"hellO");
        let e = bad.verify().unwrap_err();
        assert_eq!(*e.code(), s3s::S3ErrorCode::BadDigest);
        let alg = s3s::dto::ChecksumAlgorithm::from_static(s3s::dto::ChecksumAlgorithm::SHA256);
        let mut computed =
            ChecksumRequest::new(Some(&alg), Default::default(), None, &Default::default())
                .unwrap();
        computed.hasher.update(b"hello");
        let got = computed.verify().unwrap();
        assert!(got.checksum_sha256.is_some() && got.checksum_crc32.is_none());
    }

    #[test]
    fn content_md5_and_etag_decoding() {
        // base64 of md5("hello")
        assert_eq!(
            content_md5("XUFAKrxLKna5cZ2REBfFkg=="),
            Some(md5_of(b"hello"))
        );
        assert_eq!(content_md5("not base64!"), None);
        assert_eq!(content_md5("aGVsbG8="), None); // 5 bytes, not 16
        assert_eq!(
            etag_md5("\"5d41402abc4b2a76b9719d911017c592\""),
            Some(md5_of(b"hello"))
        );
        assert_eq!(etag_md5("xyz"), None);
    }
}
