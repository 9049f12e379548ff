//! The envelope format against a plaintext model: round trips, every range shape, tampering,
//! reordering, truncation, wrong keys, key files.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};

use super::keys::{Keyring, read_key};
use super::stream::{ByteStream, Decrypt, Encrypt, Plan};
use super::*;
use crate::crypto::config::KeySource;

const C: u64 = 4096;

fn ring_with(id: &str, byte: u8) -> Keyring {
    Keyring::from_raw((id, &[byte; 32]), &[]).unwrap()
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The plaintext in pieces of awkward sizes, as a body arrives.
fn pieces(d: &[u8]) -> ByteStream {
    let mut v = Vec::new();
    let mut at = 0;
    let mut step = 1;
    while at < d.len() {
        let end = (at + step).min(d.len());
        v.push(Ok(Bytes::copy_from_slice(&d[at..end])));
        at = end;
        step = step * 3 + 1;
    }
    Box::pin(futures::stream::iter(v))
}

async fn seal(dek: &Arc<Dek>, d: &[u8], first: u64) -> Vec<u8> {
    let s = Encrypt::new(pieces(d), dek.clone(), first, u64::MAX, None);
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

async fn open(dek: &Arc<Dek>, stored: &[u8], plan: Plan) -> Result<Vec<u8>, s3s::StdError> {
    let s: ByteStream = Box::pin(futures::stream::iter(
        stored
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    ));
    let out: Vec<Bytes> = Decrypt::new(s, dek.clone(), plan).try_collect().await?;
    Ok(out.concat())
}

fn whole(plain: u64) -> Plan {
    Plan {
        plain,
        base_index: 0,
        first: 0,
        skip: 0,
        take: plain,
    }
}

async fn fresh(keys: &Keyring) -> (Arc<Dek>, Envelope) {
    let (dek, env) = Dek::generate(keys, C).await.unwrap();
    (Arc::new(dek), env)
}

#[test]
fn layout_arithmetic() {
    let l = Layout { chunk: C };
    assert_eq!(l.stored_size(0), 0);
    assert_eq!(l.stored_size(1), 17);
    assert_eq!(l.stored_size(C), C + 16);
    assert_eq!(l.stored_size(C + 1), C + 1 + 32);
    let r = l.range(3 * C, C + 5, C + 6);
    assert_eq!(r.first, 1);
    assert_eq!(r.stored, (C + 16, 2 * (C + 16)));
    assert_eq!((r.skip, r.take), (5, 1));
    // The last chunk is short: the stored range stops at the object's end.
    let r = l.range(2 * C + 10, 2 * C, 2 * C + 10);
    assert_eq!(r.stored, (2 * (C + 16), 2 * (C + 16) + 26));
}

#[tokio::test]
async fn round_trips_at_chunk_edges() {
    let keys = ring_with("k1", 1);
    for n in [0, 1, C - 1, C, C + 1, 3 * C, 5 * C + 123] {
        let d = data(n as usize);
        let (dek, env) = fresh(&keys).await;
        let stored = seal(&dek, &d, 0).await;
        assert_eq!(stored.len() as u64, env.layout().stored_size(n), "size {n}");
        if n >= 16 {
            assert!(
                !stored.windows(16).any(|w| w == &d[..16]),
                "plaintext visible in the stored bytes ({n})"
            );
        }
        // A reader that only has the packed key and the keyring.
        let env2 = Envelope::unpack(&env.pack(), "k1").unwrap();
        let dek2 = Arc::new(Dek::open(&keys, &env2).await.unwrap());
        assert_eq!(open(&dek2, &stored, whole(n)).await.unwrap(), d, "size {n}");
    }
}

#[tokio::test]
async fn every_range_of_a_small_object_matches_the_model() {
    let keys = ring_with("k1", 2);
    let n = 2 * C + 300;
    let d = data(n as usize);
    let (dek, env) = fresh(&keys).await;
    let stored = seal(&dek, &d, 0).await;
    let l = env.layout();
    let edges = [0, 1, C - 1, C, C + 1, 2 * C - 1, 2 * C, 2 * C + 1, n - 1, n];
    for &s in &edges {
        for &e in &edges {
            if s >= e {
                continue;
            }
            let r = l.range(n, s, e);
            let plan = Plan {
                plain: n,
                base_index: 0,
                first: r.first,
                skip: r.skip,
                take: r.take,
            };
            let got = open(
                &dek,
                &stored[r.stored.0 as usize..r.stored.1 as usize],
                plan,
            )
            .await
            .unwrap();
            assert_eq!(got, &d[s as usize..e as usize], "range {s}..{e}");
            // Only the chunks the range touches are read.
            let chunks = (e - 1) / C - s / C + 1;
            assert!(r.stored.1 - r.stored.0 <= chunks * (C + 16));
        }
    }
}

#[tokio::test]
async fn tampering_reordering_truncation_and_extension_fail() {
    let keys = ring_with("k1", 3);
    let n = 3 * C;
    let d = data(n as usize);
    let (dek, _) = fresh(&keys).await;
    let stored = seal(&dek, &d, 0).await;
    let sealed = (C + 16) as usize;

    let mut flipped = stored.clone();
    flipped[sealed + 7] ^= 1;
    assert!(
        open(&dek, &flipped, whole(n)).await.is_err(),
        "flipped byte"
    );

    let mut swapped = stored.clone();
    let (a, b) = swapped.split_at_mut(sealed);
    a.swap_with_slice(&mut b[..sealed]);
    assert!(
        open(&dek, &swapped, whole(n)).await.is_err(),
        "swapped chunks"
    );

    assert!(
        open(&dek, &stored[..2 * sealed], whole(n)).await.is_err(),
        "truncated body"
    );
    // Even a reader told the shorter size refuses: chunk 1 was not sealed as the last.
    assert!(
        open(&dek, &stored[..2 * sealed], whole(2 * C))
            .await
            .is_err(),
        "truncation at a chunk boundary with a matching size"
    );
    let mut longer = stored.clone();
    longer.extend_from_slice(&[0; 5]);
    assert!(open(&dek, &longer, whole(n)).await.is_err(), "extra bytes");
    assert!(
        open(&dek, &[1, 2, 3], whole(0)).await.is_err(),
        "bytes where an empty object has none"
    );

    // Another object's DEK does not open these chunks.
    let (other, _) = fresh(&keys).await;
    assert!(open(&other, &stored, whole(n)).await.is_err(), "other DEK");
}

#[tokio::test]
async fn part_chunks_are_bound_to_their_part_number() {
    let keys = ring_with("k1", 4);
    let d = data((C + 10) as usize);
    let (dek, _) = fresh(&keys).await;
    let base = 3u64 << PART_INDEX_SHIFT;
    let stored = seal(&dek, &d, base).await;
    let plan = |base_index| Plan {
        base_index,
        ..whole(d.len() as u64)
    };
    assert_eq!(open(&dek, &stored, plan(base)).await.unwrap(), d);
    assert!(
        open(&dek, &stored, plan(4u64 << PART_INDEX_SHIFT))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn wrapped_keys_need_the_right_master_key() {
    let old = ring_with("k-old", 5);
    let (_, env) = fresh(&old).await;
    let d = data(100);
    let dek = Arc::new(Dek::open(&old, &env).await.unwrap());
    let stored = seal(&dek, &d, 0).await;

    // Same id, other bytes: refused, never a wrong key.
    let impostor = ring_with("k-old", 6);
    assert!(matches!(
        Dek::open(&impostor, &env).await,
        Err(CryptoError::Unwrap(_))
    ));
    // A keyring without the id names it.
    let newer = ring_with("k-new", 7);
    assert!(matches!(
        Dek::open(&newer, &env).await,
        Err(CryptoError::UnknownKey(id)) if id == "k-old"
    ));
    // With the old key kept as a previous key, the DEK unwraps and can be re-wrapped under
    // the new key (rotation), after which the new key alone opens the object.
    let both = Keyring::from_raw(("k-new", &[7; 32]), &[("k-old", &[5; 32])]).unwrap();
    let raw = both.unwrap("k-old", &env.wrapped).await.unwrap();
    let (id, wrapped) = both.wrap(&raw).await.unwrap();
    assert_eq!(id, "k-new");
    let rotated = Envelope {
        wrapped,
        key_id: id,
        ..env.clone()
    };
    let dek2 = Arc::new(Dek::open(&newer, &rotated).await.unwrap());
    assert_eq!(open(&dek2, &stored, whole(100)).await.unwrap(), d);
    // A wrapped key moved to another key id does not unwrap (the id is authenticated).
    let relabelled = Keyring::from_raw(("k-other", &[5; 32]), &[]).unwrap();
    let moved = Envelope {
        key_id: "k-other".into(),
        ..env.clone()
    };
    assert!(Dek::open(&relabelled, &moved).await.is_err());
}

#[test]
fn packed_keys_are_checked() {
    assert!(matches!(
        Envelope::unpack(&[1, 12, 0], "k"),
        Err(CryptoError::Malformed)
    ));
    let mut good = vec![1u8, 16];
    good.extend_from_slice(&[0; NONCE_LEN + WRAPPED_LEN]);
    assert_eq!(Envelope::unpack(&good, "k").unwrap().layout().chunk, 65536);
    good[1] = 30; // 1 GiB chunks: out of range
    assert!(Envelope::unpack(&good, "k").is_err());
    good[1] = 16;
    good[0] = 9; // unknown format
    assert!(Envelope::unpack(&good, "k").is_err());
}

#[test]
fn key_files_must_be_private_and_32_bytes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("master.key");
    std::fs::write(&p, [9u8; 32]).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = read_key(&KeySource::File(p.clone()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(*read_key(&KeySource::File(p.clone())).unwrap(), [9u8; 32]);
    std::fs::write(&p, [9u8; 31]).unwrap();
    let e = read_key(&KeySource::File(p)).unwrap_err().to_string();
    assert!(e.contains("exactly 32 bytes") && !e.contains("9, 9"), "{e}");
    let e = read_key(&KeySource::Env("S3O_SURELY_UNSET_KEY_VAR".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not set"), "{e}");
}

#[tokio::test]
async fn sealed_output_comes_chunk_by_chunk() {
    // A 64-chunk body in one piece comes out chunk by chunk: no item is larger than a chunk.
    let keys = ring_with("k1", 8);
    let (dek, _) = fresh(&keys).await;
    let d = Bytes::from(data((64 * C) as usize));
    let s: ByteStream = Box::pin(futures::stream::iter(vec![Ok(d)]));
    let mut e = Encrypt::new(s, dek, 0, u64::MAX, None);
    let mut items = 0;
    while let Some(item) = e.next().await {
        assert!(item.unwrap().len() as u64 <= C + 16);
        items += 1;
    }
    assert_eq!(items, 64);
}
