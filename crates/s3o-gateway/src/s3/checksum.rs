//! Flexible checksums kept with each version, and GetObjectAttributes.
//!
//! The `x-amz-checksum-*` value verified while a body streams is stored with the version
//! (`attributes.checksum` in the ledger) and answered on GET/HEAD only when the client asks
//! (`x-amz-checksum-mode: ENABLED`), as S3 does. One value is kept per version: the algorithm
//! the client named, else the first one it sent. A multipart upload created with an algorithm
//! keeps each part's checksum with the part; Complete then stores either the checksum of every
//! byte (`FULL_OBJECT`, computed while the parts are assembled) or the checksum of the parts'
//! checksums with a `-<parts>` suffix (`COMPOSITE`, S3's default for SHA and CRC32/CRC32C
//! uploads), and the part layout (sizes and checksums) GetObjectAttributes lists.

use base64::Engine as _;
use s3o_store::{ObjectAttributes, ObjectChecksum};

use super::*;

/// Every byte of the object.
pub(super) const FULL_OBJECT: &str = "FULL_OBJECT";
/// A checksum of the parts' checksums.
pub(super) const COMPOSITE: &str = "COMPOSITE";

/// The value of `algorithm` in `c`.
pub(super) fn value_of<'a>(c: &'a Checksum, algorithm: &str) -> Option<&'a String> {
    match algorithm {
        ChecksumAlgorithm::CRC32 => c.checksum_crc32.as_ref(),
        ChecksumAlgorithm::CRC32C => c.checksum_crc32c.as_ref(),
        ChecksumAlgorithm::CRC64NVME => c.checksum_crc64nvme.as_ref(),
        ChecksumAlgorithm::SHA1 => c.checksum_sha1.as_ref(),
        ChecksumAlgorithm::SHA256 => c.checksum_sha256.as_ref(),
        _ => None,
    }
}

fn set_value(c: &mut Checksum, algorithm: &str, v: String) {
    match algorithm {
        ChecksumAlgorithm::CRC32 => c.checksum_crc32 = Some(v),
        ChecksumAlgorithm::CRC32C => c.checksum_crc32c = Some(v),
        ChecksumAlgorithm::CRC64NVME => c.checksum_crc64nvme = Some(v),
        ChecksumAlgorithm::SHA1 => c.checksum_sha1 = Some(v),
        ChecksumAlgorithm::SHA256 => c.checksum_sha256 = Some(v),
        _ => {}
    }
}

/// Algorithms in the order a version's one stored value is picked when the client named none.
const ALGORITHMS: [&str; 5] = [
    ChecksumAlgorithm::CRC32,
    ChecksumAlgorithm::CRC32C,
    ChecksumAlgorithm::CRC64NVME,
    ChecksumAlgorithm::SHA1,
    ChecksumAlgorithm::SHA256,
];

/// The full-object checksum to keep for a body whose verified values are `computed`: the one
/// of `algorithm` when named, else the first computed. `None` when nothing was computed.
pub(super) fn full_object(computed: &Checksum, algorithm: Option<&str>) -> Option<ObjectChecksum> {
    let pick = |a: &str| {
        value_of(computed, a).map(|v| ObjectChecksum {
            algorithm: a.to_owned(),
            kind: FULL_OBJECT.to_owned(),
            value: v.clone(),
        })
    };
    match algorithm {
        Some(a) => pick(a),
        None => ALGORITHMS.iter().find_map(|a| pick(a)),
    }
}

/// The checksum fields of an answer for a stored checksum (empty for none).
pub(super) fn answer(c: Option<&ObjectChecksum>) -> Checksum {
    let mut out = Checksum::default();
    if let Some(c) = c.filter(|c| !c.value.is_empty()) {
        set_value(&mut out, &c.algorithm, c.value.clone());
        out.checksum_type = Some(ChecksumType::from(c.kind.clone()));
    }
    out
}

/// The checksum of one part as an answer's fields.
fn part_answer(algorithm: &str, value: &str) -> Checksum {
    let mut out = Checksum::default();
    if !value.is_empty() {
        set_value(&mut out, algorithm, value.to_owned());
    }
    out
}

/// A hasher of `algorithm` alone.
fn hasher_for(algorithm: &str) -> S3Result<s3s::checksum::ChecksumHasher> {
    let mut h = s3s::checksum::ChecksumHasher::default();
    match algorithm {
        ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
        ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
        ChecksumAlgorithm::CRC64NVME => h.crc64nvme = Some(Default::default()),
        ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
        ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "unsupported checksum algorithm {other}"
            ));
        }
    }
    Ok(h)
}

/// The composite checksum of parts whose checksums (base64) are `parts`: `algorithm` over
/// their concatenated raw digests, base64, then `-<parts>`.
pub(super) fn composite(algorithm: &str, parts: &[&str]) -> S3Result<String> {
    let mut h = hasher_for(algorithm)?;
    for p in parts {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(p)
            .map_err(|_| s3_error!(InternalError, "a part has a malformed checksum"))?;
        h.update(&raw);
    }
    let sum = h.finalize();
    let v = value_of(&sum, algorithm)
        .cloned()
        .ok_or_else(|| s3_error!(InternalError, "no composite checksum computed"))?;
    Ok(format!("{v}-{}", parts.len()))
}

/// Whether a value a client expects for a Complete matches the stored one (a composite may be
/// named with or without its `-<parts>` suffix).
pub(super) fn expected_matches(expected: &str, stored: &str) -> bool {
    expected == stored || stored.rsplit_once('-').is_some_and(|(v, _)| v == expected)
}

/// The checksum algorithm and type a new multipart upload asks for: `FULL_OBJECT` when the
/// client says so (and always for CRC64NVME, which has no composite form), else `COMPOSITE`.
pub(super) fn for_upload(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<ObjectChecksum>> {
    let Some(a) = algorithm else {
        return Ok(None);
    };
    let a = a.as_str();
    hasher_for(a)?;
    let full = match kind.map(ChecksumType::as_str) {
        Some(ChecksumType::FULL_OBJECT) => true,
        Some(ChecksumType::COMPOSITE) if a == ChecksumAlgorithm::CRC64NVME => {
            return Err(s3_error!(
                InvalidRequest,
                "CRC64NVME checksums have no COMPOSITE type"
            ));
        }
        Some(ChecksumType::COMPOSITE) => false,
        Some(other) => {
            return Err(s3_error!(InvalidRequest, "unknown checksum type {other}"));
        }
        None => a == ChecksumAlgorithm::CRC64NVME,
    };
    Ok(Some(ObjectChecksum {
        algorithm: a.to_owned(),
        kind: if full { FULL_OBJECT } else { COMPOSITE }.to_owned(),
        value: String::new(),
    }))
}

/// A stored checksum of `algorithm` with a value (a part's, or a request's).
pub(super) fn checksum_value(algorithm: &str, value: String) -> ObjectChecksum {
    ObjectChecksum {
        algorithm: algorithm.to_owned(),
        kind: FULL_OBJECT.to_owned(),
        value,
    }
}

/// The checksum fields of a request or part entry, gathered.
pub(super) fn sent(
    crc32: Option<&String>,
    crc32c: Option<&String>,
    crc64nvme: Option<&String>,
    sha1: Option<&String>,
    sha256: Option<&String>,
) -> Checksum {
    Checksum {
        checksum_crc32: crc32.cloned(),
        checksum_crc32c: crc32c.cloned(),
        checksum_crc64nvme: crc64nvme.cloned(),
        checksum_sha1: sha1.cloned(),
        checksum_sha256: sha256.cloned(),
        checksum_type: None,
    }
}

/// A part named in a Complete with a checksum must name the one its upload recorded.
pub(super) fn check_part(
    upload: Option<&ObjectChecksum>,
    given: &Checksum,
    recorded: &str,
    number: i32,
) -> S3Result<()> {
    let Some(u) = upload else {
        return Ok(());
    };
    match value_of(given, &u.algorithm) {
        Some(v) if v != recorded => Err(s3_error!(
            BadDigest,
            "the checksum of part {number} does not match the uploaded part"
        )),
        _ => Ok(()),
    }
}

/// Prepares the checksum of an object assembled from an upload's parts. `attributes` are the
/// upload's, with the part layout filled in; `expected` is the value the Complete request
/// named, if any. A COMPOSITE checksum is computed here from the parts' checksums (and checked
/// against `expected`); a FULL_OBJECT one is computed while the parts stream, through the
/// returned request (which checks `expected` at the end). A mismatch is BadDigest.
pub(super) fn for_assembly(
    attributes: &mut ObjectAttributes,
    expected: &Checksum,
) -> S3Result<Option<body::ChecksumRequest>> {
    let Some(c) = attributes.checksum.clone() else {
        return Ok(None);
    };
    let expected = value_of(expected, &c.algorithm).cloned();
    if c.kind == FULL_OBJECT {
        let mut sent = Checksum::default();
        if let Some(v) = expected {
            set_value(&mut sent, &c.algorithm, v);
        }
        let req = body::ChecksumRequest::new(
            Some(&ChecksumAlgorithm::from(c.algorithm.clone())),
            sent,
            None,
            &hyper::HeaderMap::new(),
        )?;
        return Ok(Some(req));
    }
    let sums: Option<Vec<&str>> = attributes
        .parts
        .iter()
        .map(|p| (!p.checksum.is_empty()).then_some(p.checksum.as_str()))
        .collect();
    let value = match sums {
        Some(s) if !s.is_empty() => Some(composite(&c.algorithm, &s)?),
        _ => None,
    };
    match (&expected, &value) {
        (Some(e), Some(v)) if !expected_matches(e, v) => {
            return Err(s3_error!(
                BadDigest,
                "the checksum does not match the parts' checksums"
            ));
        }
        (Some(_), None) => {
            return Err(s3_error!(
                BadDigest,
                "a part was uploaded without a checksum"
            ));
        }
        _ => {}
    }
    attributes.checksum = value.map(|v| ObjectChecksum { value: v, ..c });
    Ok(None)
}

impl GatewayS3 {
    pub(super) async fn do_get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        // A version is addressed as on GET: a delete marker answers as S3 does (404 latest,
        // 405 addressed, with x-amz-delete-marker).
        let found = self
            .lookup_at(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        // The header is a comma-separated list (one element or several).
        let wants = |name: &str| {
            i.object_attributes
                .iter()
                .flat_map(|a| a.as_str().split(','))
                .any(|a| a.trim().eq_ignore_ascii_case(name))
        };
        let attrs: &ObjectAttributes = &found.meta.attributes;
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(to_s3_time(found.last_modified)),
            version_id: super::versioning::answered_version(
                found.meta.version_id.as_deref(),
                i.version_id.is_some(),
            ),
            ..GetObjectAttributesOutput::default()
        };
        if wants("ETag") {
            // GetObjectAttributes answers the ETag without quotes.
            out.e_tag = etag_of(&found.meta);
        }
        if wants("StorageClass") {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants("ObjectSize") {
            out.object_size = Some(found.size);
        }
        if wants("Checksum") && attrs.checksum.as_ref().is_some_and(|c| !c.value.is_empty()) {
            out.checksum = Some(answer(attrs.checksum.as_ref()));
        }
        if wants("ObjectParts") && !attrs.parts.is_empty() {
            let marker = i.part_number_marker.unwrap_or(0).max(0);
            let max = i.max_parts.unwrap_or(1000).clamp(1, 1000);
            let algorithm = attrs
                .checksum
                .as_ref()
                .map(|c| c.algorithm.clone())
                .unwrap_or_default();
            let after: Vec<(i32, &s3o_store::PartLayout)> = (1_i32..)
                .zip(attrs.parts.iter())
                .filter(|(n, _)| *n > marker)
                .collect();
            let truncated = after.len() > max as usize;
            let page: Vec<_> = after.into_iter().take(max as usize).collect();
            let next = page.last().map(|(n, _)| *n);
            let parts = page
                .into_iter()
                .map(|(n, p)| {
                    let sum = part_answer(&algorithm, &p.checksum);
                    ObjectPart {
                        part_number: Some(n),
                        size: Some(p.size),
                        checksum_crc32: sum.checksum_crc32,
                        checksum_crc32c: sum.checksum_crc32c,
                        checksum_crc64nvme: sum.checksum_crc64nvme,
                        checksum_sha1: sum.checksum_sha1,
                        checksum_sha256: sum.checksum_sha256,
                    }
                })
                .collect();
            out.object_parts = Some(GetObjectAttributesParts {
                is_truncated: Some(truncated),
                max_parts: Some(max),
                next_part_number_marker: next.filter(|_| truncated),
                part_number_marker: Some(marker),
                parts: Some(parts),
                total_parts_count: i32::try_from(attrs.parts.len()).ok(),
            });
        }
        Ok(S3Response::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_sha256_of_one_part_matches_s3() {
        // s3-tests' values: SHA-256 of 1024 'A's, and the composite S3 computes for it.
        let part = "arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0=";
        assert_eq!(
            composite("SHA256", &[part]).unwrap(),
            "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1"
        );
        assert!(expected_matches(
            "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=",
            "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1"
        ));
        assert!(!expected_matches("bad", "Ok6Cs5b96ux6-1"));
    }

    #[test]
    fn upload_types_follow_s3_defaults() {
        let sha = ChecksumAlgorithm::from_static(ChecksumAlgorithm::SHA256);
        let crc64 = ChecksumAlgorithm::from_static(ChecksumAlgorithm::CRC64NVME);
        let full = ChecksumType::from_static(ChecksumType::FULL_OBJECT);
        let comp = ChecksumType::from_static(ChecksumType::COMPOSITE);
        assert_eq!(
            for_upload(Some(&sha), None).unwrap().unwrap().kind,
            COMPOSITE
        );
        assert_eq!(
            for_upload(Some(&sha), Some(&full)).unwrap().unwrap().kind,
            FULL_OBJECT
        );
        assert_eq!(
            for_upload(Some(&crc64), None).unwrap().unwrap().kind,
            FULL_OBJECT
        );
        assert!(for_upload(Some(&crc64), Some(&comp)).is_err());
        assert!(for_upload(None, None).unwrap().is_none());
    }

    #[test]
    fn full_object_picks_the_named_or_first_algorithm() {
        let c = Checksum {
            checksum_crc32: Some("a".into()),
            checksum_sha256: Some("b".into()),
            ..Checksum::default()
        };
        assert_eq!(full_object(&c, Some("SHA256")).unwrap().value, "b");
        assert_eq!(full_object(&c, None).unwrap().algorithm, "CRC32");
        assert!(full_object(&Checksum::default(), None).is_none());
        let a = answer(full_object(&c, Some("SHA256")).as_ref());
        assert_eq!(a.checksum_sha256.as_deref(), Some("b"));
        assert!(a.checksum_crc32.is_none());
    }
}
