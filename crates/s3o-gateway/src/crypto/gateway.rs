//! The hooks the S3 operations call: which buckets encrypt, sealing a write on its way to the
//! backend, opening a (ranged) read, and the multipart parts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use s3s::{S3Error, s3_error};

use super::stream::{ByteStream, Decrypt, Encrypt, Plan, Tap};
use super::{CryptoError, Dek, Envelope, KeyProvider, PART_INDEX_SHIFT, PATH_MARK};
use crate::body::Uploaded;
use crate::config::Config;

/// The encryption columns of one ledger row (object copy or part), as the gateway carries
/// them in [`crate::ledger::ObjectMeta`].
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Sealed {
    /// The packed key ([`Envelope::pack`]).
    pub(crate) key: Vec<u8>,
    /// Master-key id.
    pub(crate) key_id: String,
    /// Plaintext size.
    pub(crate) plaintext_size: i64,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("plaintext_size", &self.plaintext_size)
            .finish_non_exhaustive()
    }
}

/// The gateway's encryption settings and master keys.
pub(crate) struct Crypto {
    keys: Arc<dyn KeyProvider>,
    chunk: u64,
    default_encrypt: bool,
    per_bucket: BTreeMap<String, bool>,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("key_id", &self.keys.current_key_id())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

fn internal(e: &CryptoError) -> S3Error {
    tracing::error!(error = %e, "encryption failure");
    s3_error!(InternalError, "{e}")
}

impl Crypto {
    /// The settings of `config`: `None` without an `[encryption]` section. Keys are loaded
    /// (and file permissions checked) here.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Arc<Crypto>>, String> {
        let Some(e) = &config.encryption else {
            return Ok(None);
        };
        e.validate()?;
        let keys = super::keys::Keyring::load(e).map_err(|e| format!("[encryption] {e}"))?;
        Ok(Some(Arc::new(Crypto {
            keys: Arc::new(keys),
            chunk: e.chunk_size,
            default_encrypt: e.encrypt,
            per_bucket: config
                .buckets
                .iter()
                .filter_map(|b| b.encrypt.map(|on| (b.name.clone(), on)))
                .collect(),
        })))
    }

    /// Plaintext bytes per chunk of new objects.
    pub(crate) fn chunk(&self) -> u64 {
        self.chunk
    }

    /// The key provider.
    pub(crate) fn keys(&self) -> &dyn KeyProvider {
        self.keys.as_ref()
    }

    /// Whether new objects of `bucket` are encrypted.
    pub(crate) fn encrypts(&self, bucket: &str) -> bool {
        self.per_bucket
            .get(bucket)
            .copied()
            .unwrap_or(self.default_encrypt)
    }

    /// A fresh upload-level key for a multipart upload into `bucket`, or `None` when the
    /// bucket is not encrypted.
    pub(crate) async fn upload_key(&self, bucket: &str) -> Result<Option<Envelope>, S3Error> {
        if !self.encrypts(bucket) {
            return Ok(None);
        }
        let (_, env) = Dek::generate(self.keys(), self.chunk)
            .await
            .map_err(|e| internal(&e))?;
        Ok(Some(env))
    }

    /// Unwraps the DEK of a ledger row.
    pub(crate) async fn dek(&self, sealed: &Sealed) -> Result<(Arc<Dek>, Envelope), CryptoError> {
        let env = Envelope::unpack(&sealed.key, &sealed.key_id)?;
        let dek = Dek::open(self.keys(), &env).await?;
        Ok((Arc::new(dek), env))
    }
}

/// A write being sealed: the stream adapter's plaintext tap and what the ledger records.
pub(crate) struct SealedWrite {
    dek: Arc<Dek>,
    first_index: u64,
    limit: u64,
    tap: Arc<Mutex<Tap>>,
    /// Backend bytes the write produces when the body has its declared size.
    pub(crate) stored_size: i64,
    /// The row's encryption columns.
    pub(crate) sealed: Sealed,
}

impl SealedWrite {
    /// Marks the backend path of a sealed version (see [`PATH_MARK`]).
    pub(crate) fn mark(&self, storage_key: &mut String) {
        storage_key.push_str(PATH_MARK);
    }

    /// The body as it goes to the backend.
    pub(crate) fn encrypt(&self, body: ByteStream) -> ByteStream {
        Box::pin(Encrypt::new(
            body,
            self.dek.clone(),
            self.first_index,
            self.limit,
            Some(self.tap.clone()),
        ))
    }

    /// What the upload wrote, seen from the plaintext side (size and MD5 of the client's
    /// bytes), so the write path's checks and ETag stay the plaintext's. The client checksums
    /// computed over the plaintext go back into `checksums`.
    pub(crate) fn plaintext(
        &self,
        up: Uploaded,
        checksums: &mut s3s::checksum::ChecksumHasher,
    ) -> Uploaded {
        let mut t = self.tap.lock().unwrap_or_else(|e| e.into_inner());
        *checksums = std::mem::take(&mut t.checksums);
        let md5 = std::mem::take(&mut t.md5);
        let mut out = [0u8; 16];
        out.copy_from_slice(&md5::Digest::finalize(md5));
        let stored_ok = up.size == self.dek.layout().stored_size(t.size);
        Uploaded {
            // A stored size that does not match the plaintext cannot be read back: reported
            // as a length mismatch so the write is refused.
            size: if stored_ok { t.size } else { u64::MAX },
            md5: out,
        }
    }
}

/// Starts sealing a write of `size` plaintext bytes into `bucket` when the bucket encrypts:
/// a fresh DEK, the encryption columns set on `meta`, and the
/// client's checksum hashers moved to the plaintext tap. `None`: the write stays plaintext.
pub(crate) async fn seal_write(
    crypto: Option<&Crypto>,
    bucket: &str,
    size: i64,
    meta: &mut crate::ledger::ObjectMeta,
    checksums: &mut s3s::checksum::ChecksumHasher,
) -> Result<Option<SealedWrite>, S3Error> {
    let Some(c) = crypto.filter(|c| c.encrypts(bucket)) else {
        return Ok(None);
    };
    let (dek, env) = Dek::generate(c.keys(), c.chunk)
        .await
        .map_err(|e| internal(&e))?;
    let stored = env.layout().stored_size(u64::try_from(size).unwrap_or(0));
    let sealed = Sealed {
        key: env.pack(),
        key_id: env.key_id.clone(),
        plaintext_size: size,
    };
    meta.encryption = Some(sealed.clone());
    Ok(Some(SealedWrite {
        dek: Arc::new(dek),
        first_index: 0,
        limit: u64::MAX,
        tap: new_tap(checksums),
        stored_size: i64::try_from(stored).unwrap_or(i64::MAX),
        sealed,
    }))
}

fn new_tap(checksums: &mut s3s::checksum::ChecksumHasher) -> Arc<Mutex<Tap>> {
    Arc::new(Mutex::new(Tap {
        size: 0,
        md5: md5::Md5::default(),
        checksums: std::mem::take(checksums),
    }))
}

/// Starts sealing part `part_number` of an upload whose upload-level key is `upload_key`: the
/// upload's DEK, a fresh base nonce for this attempt, chunk indices from
/// `part_number << 21`.
pub(crate) async fn seal_part(
    crypto: Option<&Crypto>,
    upload_key: &Sealed,
    part_number: i32,
    size: i64,
    checksums: &mut s3s::checksum::ChecksumHasher,
) -> Result<SealedWrite, S3Error> {
    let c = crypto.ok_or_else(|| {
        s3_error!(
            InternalError,
            "the upload is encrypted and this gateway has no [encryption] keys"
        )
    })?;
    let env = Envelope::unpack(&upload_key.key, &upload_key.key_id)
        .and_then(|e| e.with_fresh_nonce())
        .map_err(|e| internal(&e))?;
    let dek = Dek::open(c.keys(), &env).await.map_err(|e| internal(&e))?;
    let stored = env.layout().stored_size(u64::try_from(size).unwrap_or(0));
    let first = u64::try_from(part_number).unwrap_or(0) << PART_INDEX_SHIFT;
    Ok(SealedWrite {
        dek: Arc::new(dek),
        first_index: first,
        limit: first + (1 << PART_INDEX_SHIFT),
        tap: new_tap(checksums),
        stored_size: i64::try_from(stored).unwrap_or(i64::MAX),
        sealed: Sealed {
            key: env.pack(),
            key_id: env.key_id.clone(),
            plaintext_size: size,
        },
    })
}

/// How to read a sealed object or part: its DEK and the chunk plan of the requested range.
pub(crate) struct ReadPlan {
    dek: Arc<Dek>,
    plan: Plan,
    /// Backend byte range to fetch (`None`: the whole stored object).
    pub(crate) stored_range: Option<(u64, u64)>,
}

impl ReadPlan {
    /// The plan for plaintext `range` (`None`: all of it) of a row sealed as `sealed`, whose
    /// chunk indices start at `base_index`.
    pub(crate) async fn new(
        crypto: Option<&Crypto>,
        sealed: &Sealed,
        base_index: u64,
        range: Option<(u64, u64)>,
    ) -> Result<ReadPlan, S3Error> {
        let c = crypto.ok_or_else(|| {
            s3_error!(
                InternalError,
                "the object is encrypted and this gateway has no [encryption] keys"
            )
        })?;
        let (dek, env) = c.dek(sealed).await.map_err(|e| internal(&e))?;
        let plain = u64::try_from(sealed.plaintext_size).unwrap_or(0);
        let (plan, stored_range) = match range {
            Some((s, e)) if s < e && e <= plain => {
                let r = env.layout().range(plain, s, e);
                (
                    Plan {
                        plain,
                        base_index,
                        first: r.first,
                        skip: r.skip,
                        take: r.take,
                    },
                    Some(r.stored),
                )
            }
            _ => (
                Plan {
                    plain,
                    base_index,
                    first: 0,
                    skip: 0,
                    take: plain,
                },
                None,
            ),
        };
        Ok(ReadPlan {
            dek,
            plan,
            stored_range,
        })
    }

    /// The plaintext of `stored`, every chunk authenticated as it streams.
    pub(crate) fn stream(&self, stored: ByteStream) -> ByteStream {
        Box::pin(Decrypt::new(stored, self.dek.clone(), self.plan))
    }

    /// The plaintext of `stored` (the backend bytes of [`ReadPlan::stored_range`]). The first
    /// chunk is opened before this returns, so a copy whose bytes do not authenticate is an
    /// error here (the caller tries another copy) rather than a failure mid-body.
    pub(crate) async fn decrypt(&self, stored: ByteStream) -> Result<ByteStream, s3s::StdError> {
        let mut s = Decrypt::new(stored, self.dek.clone(), self.plan);
        match s.next().await {
            None => Ok(Box::pin(futures::stream::empty())),
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => Ok(Box::pin(
                futures::stream::once(async { Ok(first) }).chain(s),
            )),
        }
    }
}

/// The plaintext stream of a stored part for Complete's assembly (`sealed`: the part row's
/// encryption columns; `None`: a plaintext part, returned as is).
pub(crate) fn part_plaintext(stored: ByteStream, part: Option<&PartKey>) -> ByteStream {
    match part {
        None => stored,
        Some((dek, number, plain)) => {
            let plain = u64::try_from(*plain).unwrap_or(0);
            let plan = Plan {
                plain,
                base_index: u64::try_from(*number).unwrap_or(0) << PART_INDEX_SHIFT,
                first: 0,
                skip: 0,
                take: plain,
            };
            Box::pin(Decrypt::new(stored, dek.clone(), plan))
        }
    }
}

/// Whether a backend path is an encrypted version (see [`PATH_MARK`]).
pub(crate) fn is_sealed_path(path: &str) -> bool {
    path.ends_with(PATH_MARK)
}

/// A stored form carrying `sealed`'s encryption columns (plaintext: none).
pub(crate) fn form_columns(sealed: Option<&Sealed>) -> s3o_store::StoredForm {
    match sealed {
        None => s3o_store::StoredForm::default(),
        Some(s) => s3o_store::StoredForm {
            encrypted: true,
            encryption_key: s.key.clone(),
            key_id: s.key_id.clone(),
            plaintext_size: s.plaintext_size,
            ..s3o_store::StoredForm::default()
        },
    }
}

/// The encryption columns of a stored form, when it is sealed with a key.
pub(crate) fn sealed_of(form: &s3o_store::StoredForm) -> Option<Sealed> {
    (form.encrypted && form.has_dek()).then(|| Sealed {
        key: form.encryption_key.clone(),
        key_id: form.key_id.clone(),
        plaintext_size: form.plaintext_size,
    })
}

/// An encrypted part opened for assembly: its DEK, part number and plaintext size.
pub(crate) type PartKey = (Arc<Dek>, i32, i64);

/// Unwraps the DEK of part `number` sealed as `sealed`.
pub(crate) async fn open_part(
    crypto: Option<&Crypto>,
    sealed: &Sealed,
    number: i32,
) -> Result<PartKey, S3Error> {
    let c = crypto.ok_or_else(|| {
        s3_error!(
            InternalError,
            "the upload is encrypted and this gateway has no [encryption] keys"
        )
    })?;
    let (dek, _) = c.dek(sealed).await.map_err(|e| internal(&e))?;
    Ok((dek, number, sealed.plaintext_size))
}

/// The upload-level key of an encrypted multipart upload.
pub(crate) fn sealed_of_upload(up: &s3o_store::MultipartUpload) -> Option<Sealed> {
    (up.encrypted && !up.encryption_key.is_empty()).then(|| Sealed {
        key: up.encryption_key.clone(),
        key_id: up.key_id.clone(),
        plaintext_size: 0,
    })
}

/// The encryption columns of an encrypted part.
pub(crate) fn sealed_of_part(p: &s3o_store::MultipartPart) -> Option<Sealed> {
    (p.encrypted && !p.encryption_key.is_empty()).then(|| Sealed {
        key: p.encryption_key.clone(),
        key_id: p.key_id.clone(),
        plaintext_size: p.plaintext_size,
    })
}

/// Registers an encrypted multipart upload with its upload-level key.
pub(crate) async fn create_sealed_upload(
    ledger: &crate::ledger::Ledger,
    upload_id: &str,
    key: &str,
    backend: &str,
    meta: &crate::ledger::ObjectMeta,
    env: &Envelope,
) -> Result<(), s3o_store::StoreError> {
    ledger
        .store()
        .create_multipart_upload(&s3o_store::CreateMultipartUploadParams {
            upload_id: upload_id.to_owned(),
            object_key: key.to_owned(),
            backend_name: backend.to_owned(),
            content_type: meta.content_type.clone(),
            metadata: meta.user_metadata.clone(),
            attributes: meta.attributes.clone(),
            tags: meta.tags.clone(),
            encryption_key: env.pack(),
            key_id: env.key_id.clone(),
        })
        .await
}

/// Records (or replaces) an encrypted part: `stored` backend bytes at `storage_key`, sealed
/// as `sealed` (this attempt's base nonce, the plaintext size), with its verified checksum,
/// charged to the upload's backend like any part (see [`crate::ledger::Ledger::record_part`]).
/// Returns the replaced part's bytes, queued for cleanup.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_sealed_part(
    ledger: &crate::ledger::Ledger,
    upload_id: &str,
    part_number: i32,
    etag: &str,
    stored: i64,
    storage_key: &str,
    sealed: &Sealed,
    checksum: Option<s3o_store::ObjectChecksum>,
) -> Result<Vec<crate::ledger::Displaced>, s3o_store::StoreError> {
    let form = s3o_store::StoredForm {
        storage_key: storage_key.to_owned(),
        attributes: s3o_store::ObjectAttributes {
            checksum,
            ..s3o_store::ObjectAttributes::default()
        },
        ..form_columns(Some(sealed))
    };
    ledger
        .store()
        .record_part(upload_id, part_number, etag, stored, &form)
        .await
        .map(crate::ledger::displaced)
}
