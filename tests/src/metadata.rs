//! S3 object metadata kept with each version: stored headers, checksum and part layout
//! (`attributes`), and tags; on copies, replicas, intents, multipart uploads and parts.

use std::collections::BTreeMap;

use s3o_store::*;

use crate::support::*;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn form_with(attributes: ObjectAttributes, t: BTreeMap<String, String>) -> StoredForm {
    StoredForm {
        storage_key: "blobs/meta-1".to_owned(),
        etag: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        attributes,
        tags: t,
        ..StoredForm::default()
    }
}

/// Attributes and tags come back exactly from a lookup, a listing and a replica.
pub async fn attributes_and_tags_round_trip(store: Db) {
    three_backends(&store).await;
    let form = form_with(full_attributes(7), tags(&[("a", "1"), ("é", "ü")]));
    store.record_object("m/k", A, 10, &form).await.unwrap();
    assert_eq!(copy_on(&store, "m/k", A).await.form, form);
    let page = store.list_objects("m/", "", 10).await.unwrap();
    assert_eq!(page.objects[0].form, form, "listing");
    replicate(&store, "m/k", B, A).await.unwrap();
    assert_eq!(copy_on(&store, "m/k", B).await.form, form, "replica");
    // Nothing stored reads back as nothing.
    store
        .record_object("m/plain", A, 1, &StoredForm::default())
        .await
        .unwrap();
    let plain = copy_on(&store, "m/plain", A).await.form;
    assert!(plain.attributes.is_empty() && plain.tags.is_empty());
    assert_ledger(&store).await;
}

/// An overwrite replaces the version's attributes and tags with its own (none here).
pub async fn overwrite_replaces_attributes_and_tags(store: Db) {
    three_backends(&store).await;
    let form = form_with(full_attributes(3), tags(&[("k", "v")]));
    store.record_object("m/o", A, 10, &form).await.unwrap();
    store
        .record_object("m/o", B, 20, &StoredForm::default())
        .await
        .unwrap();
    let c = copies(&store, "m/o").await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].form.attributes, ObjectAttributes::default());
    assert!(c[0].form.tags.is_empty());
    assert_ledger(&store).await;
}

/// `set_object_tags` replaces the tags of every copy and nothing else; an empty map removes
/// them; a deleted key has none to set (`ObjectNotFound`).
pub async fn set_tags_on_every_copy_then_delete_removes(store: Db) {
    three_backends(&store).await;
    let form = form_with(full_attributes(1), tags(&[("old", "1")]));
    store.record_object("m/t", A, 10, &form).await.unwrap();
    replicate(&store, "m/t", B, A).await.unwrap();
    let before = snapshot(&store).await;
    let new = tags(&[("x", ""), ("y", "2")]);
    store.set_object_tags("m/t", &new).await.unwrap();
    for b in [A, B] {
        let f = copy_on(&store, "m/t", b).await.form;
        assert_eq!(f.tags, new, "tags on {b}");
        assert_eq!(f.attributes, form.attributes, "attributes untouched on {b}");
        assert_eq!(f.storage_key, form.storage_key);
    }
    let after = snapshot(&store).await;
    assert_eq!(after.quotas, before.quotas, "tags are not bytes");
    store
        .set_object_tags("m/t", &BTreeMap::new())
        .await
        .unwrap();
    assert!(copy_on(&store, "m/t", A).await.form.tags.is_empty());
    store.delete_object("m/t").await.unwrap();
    match store.set_object_tags("m/t", &new).await {
        Err(StoreError::ObjectNotFound { .. }) => {}
        other => panic!("tags on a deleted key: {other:?}"),
    }
    assert!(copies(&store, "m/t").await.is_empty());
    assert_ledger(&store).await;
}

/// Tags and attributes outside the limits are refused before SQL and change nothing.
pub async fn invalid_tags_and_attributes_refused_without_change(store: Db) {
    three_backends(&store).await;
    let form = form_with(ObjectAttributes::default(), tags(&[("keep", "me")]));
    store.record_object("m/i", A, 10, &form).await.unwrap();
    let before = snapshot(&store).await;
    let eleven: BTreeMap<String, String> =
        (0..11).map(|i| (format!("k{i}"), String::new())).collect();
    assert_invalid(store.set_object_tags("m/i", &eleven).await, "11 tags");
    let long_key = tags(&[(&"é".repeat(129), "v")]);
    assert_invalid(store.set_object_tags("m/i", &long_key).await, "key of 129");
    let long_value = tags(&[("k", &"v".repeat(257))]);
    assert_invalid(
        store.set_object_tags("m/i", &long_value).await,
        "value of 257",
    );
    assert_invalid(
        store.set_object_tags("m/i", &tags(&[("", "v")])).await,
        "empty key",
    );
    // The limits themselves are fine (characters, not bytes).
    let max: BTreeMap<String, String> = (0..10)
        .map(|i| (format!("{i}{}", "é".repeat(127)), "ü".repeat(256)))
        .collect();
    store.set_object_tags("m/i", &max).await.unwrap();
    store
        .set_object_tags("m/i", &tags(&[("keep", "me")]))
        .await
        .unwrap();
    // A write with oversized attributes is refused as a whole.
    let mut big = ObjectAttributes::default();
    big.headers
        .insert("cache-control".to_owned(), "x".repeat(9000));
    assert_invalid(
        store
            .record_object("m/i", B, 5, &form_with(big, BTreeMap::new()))
            .await,
        "header of 9000 bytes",
    );
    let many_parts = ObjectAttributes {
        parts: vec![PartLayout::default(); 10_001],
        ..ObjectAttributes::default()
    };
    assert_invalid(
        store
            .record_object("m/i", B, 5, &form_with(many_parts, BTreeMap::new()))
            .await,
        "10001 parts",
    );
    assert_eq!(snapshot(&store).await, before);
    assert_ledger(&store).await;
}

/// A write intent carries attributes and tags to the commit that promotes it.
pub async fn intent_carries_attributes_and_tags(store: Db) {
    three_backends(&store).await;
    let form = form_with(full_attributes(9), tags(&[("t", "1")]));
    let p = PendingObject {
        intent_id: "meta-intent".to_owned(),
        object_key: "m/p".to_owned(),
        backend_name: A.to_owned(),
        size_bytes: 10,
        form: form.clone(),
        created_at: Timestamp::ZERO,
    };
    store.insert_pending(&p).await.unwrap();
    store
        .record_object_and_clear_pending("m/p", A, 10, &form, "meta-intent")
        .await
        .unwrap();
    assert_eq!(copy_on(&store, "m/p", A).await.form, form);
    assert_eq!(store.count_pending().await.unwrap(), 0);
    assert_ledger(&store).await;
}

/// An upload keeps the headers, checksum algorithm and tags asked for at creation; a part
/// keeps its checksum, and a re-uploaded part replaces it.
pub async fn multipart_upload_and_part_checksums_round_trip(store: Db) {
    three_backends(&store).await;
    let attributes = ObjectAttributes {
        headers: tags(&[("content-language", "fr"), ("expires", "never")]),
        checksum: Some(ObjectChecksum {
            algorithm: "CRC32".to_owned(),
            kind: "FULL_OBJECT".to_owned(),
            value: String::new(),
        }),
        parts: Vec::new(),
    };
    let t = tags(&[("Hello", "World"), ("foo", "bar")]);
    store
        .create_multipart_upload(&CreateMultipartUploadParams {
            upload_id: "meta-up".to_owned(),
            object_key: "m/big".to_owned(),
            backend_name: A.to_owned(),
            attributes: attributes.clone(),
            tags: t.clone(),
            ..CreateMultipartUploadParams::default()
        })
        .await
        .unwrap();
    let u = store.get_multipart_upload("meta-up").await.unwrap();
    assert_eq!((u.attributes, u.tags), (attributes, t));
    let with_sum = |v: &str| StoredForm {
        storage_key: "parts/1".to_owned(),
        attributes: ObjectAttributes {
            checksum: Some(ObjectChecksum {
                algorithm: "CRC32".to_owned(),
                kind: "FULL_OBJECT".to_owned(),
                value: v.to_owned(),
            }),
            ..ObjectAttributes::default()
        },
        ..StoredForm::default()
    };
    store
        .record_part("meta-up", 1, "e1", 5, &with_sum("JRTCyQ=="))
        .await
        .unwrap();
    store
        .record_part("meta-up", 2, "e2", 5, &StoredForm::default())
        .await
        .unwrap();
    let parts = store.get_parts("meta-up").await.unwrap();
    assert_eq!(parts[0].checksum, "JRTCyQ==");
    assert_eq!(parts[1].checksum, "");
    store
        .record_part("meta-up", 1, "e1b", 5, &with_sum("QoZTGg=="))
        .await
        .unwrap();
    assert_eq!(
        store.get_parts("meta-up").await.unwrap()[0].checksum,
        "QoZTGg=="
    );
    // Eleven tags on an upload are refused and create nothing.
    let eleven: BTreeMap<String, String> =
        (0..11).map(|i| (format!("k{i}"), String::new())).collect();
    assert_invalid(
        store
            .create_multipart_upload(&CreateMultipartUploadParams {
                upload_id: "meta-up-2".to_owned(),
                object_key: "m/big2".to_owned(),
                backend_name: A.to_owned(),
                tags: eleven,
                ..CreateMultipartUploadParams::default()
            })
            .await,
        "upload with 11 tags",
    );
    match store.get_multipart_upload("meta-up-2").await {
        Err(StoreError::MultipartUploadNotFound { .. }) => {}
        other => panic!("refused upload exists: {other:?}"),
    }
    assert_ledger(&store).await;
}
