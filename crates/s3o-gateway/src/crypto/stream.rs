//! Streaming adapters: plaintext → sealed chunks and sealed chunks → plaintext, each holding
//! at most about one chunk (plus what the inner stream hands over at once) in memory.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use futures::Stream;

use super::{CryptoError, Dek, TAG_LEN};

/// The byte streams the gateway passes around.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, s3s::StdError>> + Send>>;

/// What the plaintext side of an encrypting stream saw: its size, MD5 and the client's
/// checksums (which are over the plaintext, as the client sent it).
pub(crate) struct Tap {
    /// Plaintext bytes seen.
    pub(crate) size: u64,
    /// MD5 of the plaintext.
    pub(crate) md5: md5::Md5,
    /// The request's `x-amz-checksum-*` hashers.
    pub(crate) checksums: s3s::checksum::ChecksumHasher,
}

/// Seals a plaintext stream chunk by chunk (see the module docs of [`super`]).
pub(crate) struct Encrypt {
    inner: ByteStream,
    dek: Arc<Dek>,
    /// Absolute index of the next chunk.
    index: u64,
    /// Index past which sealing refuses (a part's chunk range).
    limit: u64,
    buf: BytesMut,
    tap: Option<Arc<Mutex<Tap>>>,
    done: bool,
}

impl Encrypt {
    /// Seals `inner` with `dek`, chunk indices from `first_index` below `limit`; `tap` sees
    /// every plaintext byte.
    pub(crate) fn new(
        inner: ByteStream,
        dek: Arc<Dek>,
        first_index: u64,
        limit: u64,
        tap: Option<Arc<Mutex<Tap>>>,
    ) -> Encrypt {
        Encrypt {
            inner,
            dek,
            index: first_index,
            limit,
            buf: BytesMut::new(),
            tap,
            done: false,
        }
    }

    fn seal_next(&mut self, len: usize, last: bool) -> Result<Bytes, s3s::StdError> {
        if self.index >= self.limit {
            return Err("the body has more chunks than one encrypted part may hold".into());
        }
        let mut out = Vec::with_capacity(len + TAG_LEN as usize);
        out.extend_from_slice(&self.buf[..len]);
        self.buf.advance(len);
        self.dek.seal(self.index, last, &mut out)?;
        self.index += 1;
        Ok(Bytes::from(out))
    }
}

impl Stream for Encrypt {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let chunk = this.dek.layout().chunk as usize;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // A full chunk is sealed only once a byte beyond it arrived: until the body ends,
            // any chunk may turn out to be the last.
            if this.buf.len() > chunk {
                return Poll::Ready(Some(this.seal_next(chunk, false)));
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(b))) => {
                    if let Some(tap) = &this.tap {
                        let mut t = tap.lock().unwrap_or_else(|e| e.into_inner());
                        t.size += b.len() as u64;
                        md5::Digest::update(&mut t.md5, &b);
                        t.checksums.update(&b);
                    }
                    this.buf.extend_from_slice(&b);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    // An empty plaintext is stored as zero bytes.
                    if this.buf.is_empty() {
                        return Poll::Ready(None);
                    }
                    let len = this.buf.len();
                    return Poll::Ready(Some(this.seal_next(len, true)));
                }
            }
        }
    }
}

/// Which chunks a [`Decrypt`] opens and which plaintext bytes it returns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Plaintext size of the whole sealed sequence (the object or the part).
    pub(crate) plain: u64,
    /// Absolute index of chunk 0 of the sequence.
    pub(crate) base_index: u64,
    /// First chunk the inner stream starts at (relative).
    pub(crate) first: u64,
    /// Plaintext bytes to drop from the first chunk.
    pub(crate) skip: u64,
    /// Plaintext bytes to return.
    pub(crate) take: u64,
}

/// Opens sealed chunks read from a backend and returns the planned plaintext bytes. Any
/// failure (a tag, a short or long body) ends the stream with an error, never with bytes
/// that did not authenticate.
pub(crate) struct Decrypt {
    inner: ByteStream,
    dek: Arc<Dek>,
    plan: Plan,
    /// Next chunk to open (relative).
    next: u64,
    /// Chunks of the whole sequence.
    total: u64,
    buf: BytesMut,
    done: bool,
}

impl Decrypt {
    /// Decrypts `inner`, which starts at chunk `plan.first` of a sequence sealed with `dek`.
    pub(crate) fn new(inner: ByteStream, dek: Arc<Dek>, plan: Plan) -> Decrypt {
        let total = dek.layout().chunks(plan.plain);
        Decrypt {
            inner,
            next: plan.first,
            total,
            dek,
            plan,
            buf: BytesMut::new(),
            done: false,
        }
    }

    fn fail(&mut self, e: CryptoError) -> Poll<Option<Result<Bytes, s3s::StdError>>> {
        self.done = true;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl Stream for Decrypt {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let layout = this.dek.layout();
            let wanted = this.plan.take > 0 && this.next < this.total;
            if wanted {
                let sealed = (layout.plain_len(this.plan.plain, this.next) + TAG_LEN) as usize;
                if this.buf.len() >= sealed {
                    let mut c = this.buf.split_to(sealed);
                    let last = this.next + 1 == this.total;
                    let index = this.plan.base_index + this.next;
                    let n = match this.dek.open_chunk(index, last, &mut c) {
                        Ok(n) => n,
                        Err(e) => return this.fail(e),
                    };
                    c.truncate(n);
                    let skip = (this.plan.skip as usize).min(c.len());
                    c.advance(skip);
                    this.plan.skip = 0;
                    let out = (this.plan.take as usize).min(c.len());
                    c.truncate(out);
                    this.plan.take -= out as u64;
                    this.next += 1;
                    if out > 0 {
                        return Poll::Ready(Some(Ok(c.freeze())));
                    }
                    continue;
                }
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(b))) => {
                    if !wanted && !b.is_empty() {
                        return this.fail(CryptoError::Length("longer than its ledger record"));
                    }
                    this.buf.extend_from_slice(&b);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    if wanted {
                        return this.fail(CryptoError::Length("shorter than its ledger record"));
                    }
                    if !this.buf.is_empty() {
                        return this.fail(CryptoError::Length("longer than its ledger record"));
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}
