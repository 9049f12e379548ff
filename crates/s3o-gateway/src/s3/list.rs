//! ListObjects (v1 and v2): pages from the ledger, continuation tokens and url encoding.

use super::*;

/// Percent-encodes a key for `encoding-type=url` listings (everything but unreserved
/// characters and `/`).
pub(super) fn url_encode(s: &str) -> String {
    keys::uri_encode(s, true)
}

/// Opaque continuation token for a bucket-relative key.
pub(super) fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// Decodes a continuation token; anything we did not issue ⇒ `InvalidArgument`.
pub(super) fn decode_token(token: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "invalid continuation token"))
}

pub(super) fn object_entry(key: String, c: &Copy) -> Object {
    Object {
        key: Some(key),
        size: Some(c.size),
        e_tag: etag_of(&c.meta),
        last_modified: Some(to_s3_time(c.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Object::default()
    }
}

impl GatewayS3 {
    pub(super) async fn do_list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: &str,
        after: &str,
        max_keys: Option<i32>,
    ) -> S3Result<crate::ledger::Listing> {
        self.bucket(bucket).await?;
        let max = max_keys.unwrap_or(MAX_LIST_KEYS).clamp(0, MAX_LIST_KEYS);
        if max == 0 {
            return Ok(crate::ledger::Listing::default());
        }
        self.ledger
            .list(
                &keys::bucket_prefix(bucket),
                prefix,
                delimiter,
                after,
                i64::from(max),
            )
            .await
            .map_err(read_err)
    }

    pub(super) async fn do_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let delimiter = i.delimiter.clone().unwrap_or_default();
        // A continuation token always wins over StartAfter, even when it sorts before it: S3
        // ignores StartAfter once a token is given, and paginators resend StartAfter on every
        // page.
        let after = match &i.continuation_token {
            Some(t) => decode_token(t)?,
            None => i.start_after.clone().unwrap_or_default(),
        };
        let l = self
            .do_list(&i.bucket, &prefix, &delimiter, &after, i.max_keys)
            .await?;
        let mut page = Page::new(l, i.encoding_type.as_ref());
        if i.fetch_owner == Some(true) {
            self.add_owner(&mut page.contents);
        }
        let count = page.contents.len() + page.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: Some(page.enc(prefix)),
            delimiter: (!delimiter.is_empty()).then(|| page.enc(delimiter)),
            max_keys: Some(i.max_keys.unwrap_or(MAX_LIST_KEYS)),
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            continuation_token: i.continuation_token.clone(),
            start_after: i.start_after.clone().map(|s| page.enc(s)),
            is_truncated: Some(page.is_truncated),
            next_continuation_token: page.is_truncated.then(|| encode_token(&page.next_after)),
            common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
            contents: Some(page.contents),
            encoding_type: i.encoding_type.clone(),
            ..ListObjectsV2Output::default()
        }))
    }

    pub(super) async fn do_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let delimiter = i.delimiter.clone().unwrap_or_default();
        let marker = i.marker.clone().unwrap_or_default();
        let l = self
            .do_list(&i.bucket, &prefix, &delimiter, &marker, i.max_keys)
            .await?;
        let mut page = Page::new(l, i.encoding_type.as_ref());
        self.add_owner(&mut page.contents);
        let next_marker = page.is_truncated.then(|| page.enc(page.next_after.clone()));
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            // v1's Prefix is never encoded: S3 answers it as sent, and SDKs that ask for
            // `encoding-type=url` (botocore always does for v1) decode every field but it.
            prefix: Some(prefix),
            marker: Some(page.enc(marker)),
            delimiter: (!delimiter.is_empty()).then(|| page.enc(delimiter)),
            max_keys: Some(i.max_keys.unwrap_or(MAX_LIST_KEYS)),
            is_truncated: Some(page.is_truncated),
            next_marker,
            common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
            contents: Some(page.contents),
            encoding_type: i.encoding_type.clone(),
            ..ListObjectsOutput::default()
        }))
    }
}

/// One page of a listing as both ListObjects versions answer it: keys and common prefixes,
/// url-encoded when the request asked for `encoding-type=url`.
struct Page {
    url: bool,
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    is_truncated: bool,
    /// The last key or prefix of the page (the next page starts after it).
    next_after: String,
}

impl Page {
    fn new(l: crate::ledger::Listing, encoding: Option<&EncodingType>) -> Page {
        let url = encoding.is_some_and(|e| e.as_str() == EncodingType::URL);
        let enc = |s: String| if url { url_encode(&s) } else { s };
        Page {
            url,
            contents: l
                .objects
                .into_iter()
                .map(|(k, c)| object_entry(enc(k), &c))
                .collect(),
            prefixes: l
                .common_prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect(),
            is_truncated: l.is_truncated,
            next_after: l.next_after,
        }
    }

    /// `s` as this page answers names: url-encoded when asked.
    fn enc(&self, s: String) -> String {
        if self.url { url_encode(&s) } else { s }
    }
}
