//! Put/Get/DeleteBucketLifecycleConfiguration: a bucket's lifecycle rules, stored with its
//! ledger row and applied by the lifecycle worker (`workers/lifecycle.rs`).
//!
//! Supported: `Expiration` by `Days` or `Date` (in a versioned bucket it writes a delete
//! marker, as S3 does), `Expiration/ExpiredObjectDeleteMarker`, `NoncurrentVersionExpiration`
//! (`NoncurrentDays`, `NewerNoncurrentVersions`), `AbortIncompleteMultipartUpload`, and a
//! filter by key prefix (the rule's `Filter`/`Prefix`, or the deprecated top-level `Prefix`)
//! and by object tags (`Filter/Tag`, `Filter/And/Tag`: an object expires only when it carries
//! every tag of the rule). Filters by object size, transitions, and a tag filter on noncurrent
//! versions are refused with `NotImplemented`: this gateway has one storage class and does not
//! match noncurrent versions' tags, so accepting them would promise something that never
//! happens.

use super::*;

/// The ledger's rule for one S3 rule; anything this gateway cannot honour is refused.
fn to_rule(r: &LifecycleRule) -> S3Result<s3o_store::LifecycleRule> {
    let id = r.id.clone().unwrap_or_default();
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        other => {
            return Err(s3_error!(
                MalformedXML,
                "rule {id:?}: Status must be Enabled or Disabled, not {other:?}"
            ));
        }
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "rule {id:?}: transitions are not supported (this gateway has one storage class)"
        ));
    }
    let sizes_refused = || {
        s3_error!(
            NotImplemented,
            "rule {id:?}: filtering by object size is not supported"
        )
    };
    let mut prefix = r.prefix.clone();
    let mut tags = BTreeMap::new();
    let mut add_tag = |t: &Tag| -> S3Result<()> {
        let (Some(k), Some(v)) = (&t.key, &t.value) else {
            return Err(s3_error!(
                MalformedXML,
                "rule {id:?}: a Tag needs a Key and a Value"
            ));
        };
        if tags.insert(k.clone(), v.clone()).is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "rule {id:?}: duplicate tag key {k:?} in the filter"
            ));
        }
        Ok(())
    };
    if let Some(f) = &r.filter {
        if let Some(t) = &f.tag {
            add_tag(t)?;
        }
        if f.object_size_greater_than.is_some() || f.object_size_less_than.is_some() {
            return Err(sizes_refused());
        }
        if let Some(and) = &f.and {
            for t in and.tags.iter().flatten() {
                add_tag(t)?;
            }
            if and.object_size_greater_than.is_some() || and.object_size_less_than.is_some() {
                return Err(sizes_refused());
            }
            if and.prefix.is_some() {
                prefix = and.prefix.clone();
            }
        }
        if f.prefix.is_some() {
            if r.prefix.is_some() {
                return Err(s3_error!(
                    MalformedXML,
                    "rule {id:?}: Prefix and Filter cannot both be given"
                ));
            }
            prefix = f.prefix.clone();
        }
    }
    let days = |what: &str, d: Option<i32>| -> S3Result<Option<u32>> {
        match d {
            None => Ok(None),
            Some(d) if d >= 1 => Ok(Some(d.unsigned_abs())),
            Some(d) => Err(s3_error!(
                InvalidArgument,
                "rule {id:?}: {what} must be a positive number of days (got {d})"
            )),
        }
    };
    let (mut expiration_days, mut expiration_date) = (None, None);
    let mut expired_object_delete_marker = false;
    if let Some(e) = &r.expiration {
        if e.expired_object_delete_marker == Some(true) {
            if e.days.is_some() || e.date.is_some() {
                return Err(s3_error!(
                    MalformedXML,
                    "rule {id:?}: ExpiredObjectDeleteMarker cannot be specified with Days or Date"
                ));
            }
            if !tags.is_empty() {
                return Err(s3_error!(
                    InvalidRequest,
                    "rule {id:?}: ExpiredObjectDeleteMarker cannot be specified with a tag filter"
                ));
            }
            expired_object_delete_marker = true;
        }
        expiration_days = days("Expiration Days", e.days)?;
        expiration_date = e.date.clone().map(|d| {
            let t = time::OffsetDateTime::from(d);
            Timestamp::from_micros(
                i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX),
            )
        });
    }
    let (mut noncurrent_days, mut newer_noncurrent_versions) = (None, None);
    if let Some(n) = &r.noncurrent_version_expiration {
        noncurrent_days = days("NoncurrentDays", n.noncurrent_days)?;
        if noncurrent_days.is_none() {
            return Err(s3_error!(
                MalformedXML,
                "rule {id:?}: NoncurrentVersionExpiration needs NoncurrentDays"
            ));
        }
        newer_noncurrent_versions = match n.newer_noncurrent_versions {
            None => None,
            Some(k) if (1..=100).contains(&k) => Some(k.unsigned_abs()),
            Some(k) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "rule {id:?}: NewerNoncurrentVersions must be 1..=100 (got {k})"
                ));
            }
        };
        if !tags.is_empty() {
            return Err(s3_error!(
                NotImplemented,
                "rule {id:?}: a tag filter on NoncurrentVersionExpiration is not supported"
            ));
        }
    }
    let abort_incomplete_upload_days = days(
        "DaysAfterInitiation",
        r.abort_incomplete_multipart_upload
            .as_ref()
            .and_then(|a| a.days_after_initiation),
    )?;
    if !tags.is_empty() && abort_incomplete_upload_days.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "rule {id:?}: AbortIncompleteMultipartUpload cannot be specified with Tags"
        ));
    }
    if let Err(e) = s3o_store::limits::tags(&tags) {
        return Err(s3_error!(InvalidTag, "rule {id:?}: {e}"));
    }
    if expiration_days.is_none()
        && expiration_date.is_none()
        && abort_incomplete_upload_days.is_none()
        && noncurrent_days.is_none()
        && !expired_object_delete_marker
    {
        return Err(s3_error!(
            MalformedXML,
            "rule {id:?}: at least one action (Expiration, NoncurrentVersionExpiration or AbortIncompleteMultipartUpload) is required"
        ));
    }
    Ok(s3o_store::LifecycleRule {
        id,
        enabled,
        prefix: prefix.unwrap_or_default(),
        expiration_days,
        expiration_date,
        abort_incomplete_upload_days,
        tags,
        noncurrent_days,
        newer_noncurrent_versions,
        expired_object_delete_marker,
    })
}

/// The S3 filter of a stored rule: `Prefix` alone, `Tag` alone, or `And` of both.
fn filter_of(r: &s3o_store::LifecycleRule) -> LifecycleRuleFilter {
    let tag = |(k, v): (&String, &String)| Tag {
        key: Some(k.clone()),
        value: Some(v.clone()),
    };
    match r.tags.len() {
        0 => LifecycleRuleFilter {
            prefix: Some(r.prefix.clone()),
            ..LifecycleRuleFilter::default()
        },
        1 if r.prefix.is_empty() => LifecycleRuleFilter {
            tag: r.tags.iter().next().map(tag),
            ..LifecycleRuleFilter::default()
        },
        _ => LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!r.prefix.is_empty()).then(|| r.prefix.clone()),
                tags: Some(r.tags.iter().map(tag).collect()),
                ..LifecycleRuleAndOperator::default()
            }),
            ..LifecycleRuleFilter::default()
        },
    }
}

/// The S3 form of a stored rule.
fn from_rule(r: &s3o_store::LifecycleRule) -> LifecycleRule {
    let expiration = (r.expiration_days.is_some()
        || r.expiration_date.is_some()
        || r.expired_object_delete_marker)
        .then(|| LifecycleExpiration {
            days: r.expiration_days.and_then(|d| i32::try_from(d).ok()),
            date: r.expiration_date.map(to_s3_time),
            expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
        });
    LifecycleRule {
        id: (!r.id.is_empty()).then(|| r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: Some(filter_of(r)),
        expiration,
        abort_incomplete_multipart_upload: r.abort_incomplete_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: i32::try_from(d).ok(),
            }
        }),
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: i32::try_from(d).ok(),
            newer_noncurrent_versions: r
                .newer_noncurrent_versions
                .and_then(|n| i32::try_from(n).ok()),
        }),
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

impl GatewayS3 {
    pub(super) async fn do_put_lifecycle(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let i = req.input;
        self.bucket(&i.bucket).await?;
        let Some(config) = i.lifecycle_configuration else {
            return Err(s3_error!(
                MalformedXML,
                "a LifecycleConfiguration is required"
            ));
        };
        let rules = config
            .rules
            .iter()
            .map(to_rule)
            .collect::<S3Result<Vec<_>>>()?;
        if rules.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "a LifecycleConfiguration needs a Rule"
            ));
        }
        match self.ledger.set_lifecycle(&i.bucket, &rules).await {
            Ok(()) => Ok(S3Response::new(
                PutBucketLifecycleConfigurationOutput::default(),
            )),
            Err(StoreError::BucketNotFound { .. }) => Err(s3_error!(
                NoSuchBucket,
                "bucket {} does not exist",
                i.bucket
            )),
            Err(e) => Err(write_err(e)),
        }
    }

    pub(super) async fn do_get_lifecycle(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let b = &req.input.bucket;
        let bucket = match self.ledger.bucket(b).await {
            Ok(bucket) => bucket,
            Err(StoreError::BucketNotFound { .. } | StoreError::InvalidInput { .. }) => {
                return Err(s3_error!(NoSuchBucket, "bucket {b} does not exist"));
            }
            Err(e) => return Err(read_err(e)),
        };
        if bucket.settings.lifecycle.is_empty() {
            return Err(s3_error!(
                NoSuchLifecycleConfiguration,
                "bucket {b} has no lifecycle configuration"
            ));
        }
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(bucket.settings.lifecycle.iter().map(from_rule).collect()),
            ..GetBucketLifecycleConfigurationOutput::default()
        }))
    }

    pub(super) async fn do_delete_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let b = &req.input.bucket;
        self.bucket(b).await?;
        match self.ledger.set_lifecycle(b, &[]).await {
            Ok(()) => Ok(S3Response::new(DeleteBucketLifecycleOutput::default())),
            Err(StoreError::BucketNotFound { .. }) => {
                Err(s3_error!(NoSuchBucket, "bucket {b} does not exist"))
            }
            Err(e) => Err(write_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(f: impl FnOnce(&mut LifecycleRule)) -> LifecycleRule {
        let mut r = LifecycleRule {
            abort_incomplete_multipart_upload: None,
            expiration: Some(LifecycleExpiration {
                days: Some(3),
                ..LifecycleExpiration::default()
            }),
            filter: Some(LifecycleRuleFilter {
                prefix: Some("tmp/".into()),
                ..LifecycleRuleFilter::default()
            }),
            id: Some("r1".into()),
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            transitions: None,
        };
        f(&mut r);
        r
    }

    #[test]
    fn rules_round_trip_through_the_ledger_form() {
        let r = to_rule(&rule(|_| {})).unwrap();
        assert_eq!(
            (
                r.id.as_str(),
                r.enabled,
                r.prefix.as_str(),
                r.expiration_days
            ),
            ("r1", true, "tmp/", Some(3))
        );
        assert_eq!(to_rule(&from_rule(&r)).unwrap(), r);
        let and = to_rule(&rule(|r| {
            r.filter = Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: Some("logs/".into()),
                    ..LifecycleRuleAndOperator::default()
                }),
                ..LifecycleRuleFilter::default()
            });
            r.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
                days_after_initiation: Some(2),
            });
        }))
        .unwrap();
        assert_eq!(
            (and.prefix.as_str(), and.abort_incomplete_upload_days),
            ("logs/", Some(2))
        );
    }

    #[test]
    fn tag_filters_round_trip() {
        let tag = |k: &str, v: &str| Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        };
        let one = to_rule(&rule(|r| {
            r.filter = Some(LifecycleRuleFilter {
                tag: Some(tag("class", "scratch")),
                ..LifecycleRuleFilter::default()
            })
        }))
        .unwrap();
        assert_eq!(one.prefix, "");
        assert_eq!(
            one.tags.iter().collect::<Vec<_>>(),
            [(&"class".to_owned(), &"scratch".to_owned())]
        );
        assert_eq!(to_rule(&from_rule(&one)).unwrap(), one);
        assert!(from_rule(&one).filter.unwrap().tag.is_some());
        let and = to_rule(&rule(|r| {
            r.filter = Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: Some("tmp/".into()),
                    tags: Some(vec![tag("a", "1"), tag("b", "")]),
                    ..LifecycleRuleAndOperator::default()
                }),
                ..LifecycleRuleFilter::default()
            })
        }))
        .unwrap();
        assert_eq!((and.prefix.as_str(), and.tags.len()), ("tmp/", 2));
        assert_eq!(to_rule(&from_rule(&and)).unwrap(), and);
        let tagged = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(and.tags_match(&tagged(&[("a", "1"), ("b", ""), ("c", "x")])));
        assert!(!and.tags_match(&tagged(&[("a", "1")])));
        assert!(!and.tags_match(&tagged(&[("a", "2"), ("b", "")])));
    }

    #[test]
    fn version_actions_round_trip_and_are_checked() {
        let noncurrent = |days, newer| NoncurrentVersionExpiration {
            noncurrent_days: days,
            newer_noncurrent_versions: newer,
        };
        let nc = to_rule(&rule(|r| {
            r.expiration = None;
            r.noncurrent_version_expiration = Some(noncurrent(Some(5), Some(2)));
        }))
        .unwrap();
        assert_eq!(
            (
                nc.noncurrent_days,
                nc.newer_noncurrent_versions,
                nc.expiration_days
            ),
            (Some(5), Some(2), None)
        );
        assert_eq!(to_rule(&from_rule(&nc)).unwrap(), nc);
        let marker = to_rule(&rule(|r| {
            r.expiration = Some(LifecycleExpiration {
                expired_object_delete_marker: Some(true),
                ..LifecycleExpiration::default()
            });
        }))
        .unwrap();
        assert!(marker.expired_object_delete_marker && marker.expiration_days.is_none());
        let back = from_rule(&marker);
        assert_eq!(
            back.expiration
                .as_ref()
                .unwrap()
                .expired_object_delete_marker,
            Some(true)
        );
        assert_eq!(to_rule(&back).unwrap(), marker);
        let code = |r: LifecycleRule| to_rule(&r).unwrap_err().code().clone();
        assert_eq!(
            code(rule(|r| {
                r.expiration.as_mut().unwrap().expired_object_delete_marker = Some(true);
            })),
            S3ErrorCode::MalformedXML
        );
        assert_eq!(
            code(rule(|r| {
                r.noncurrent_version_expiration = Some(noncurrent(None, Some(1)));
            })),
            S3ErrorCode::MalformedXML
        );
        assert_eq!(
            code(rule(|r| {
                r.noncurrent_version_expiration = Some(noncurrent(Some(1), Some(0)));
            })),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(rule(|r| {
                r.filter.as_mut().unwrap().tag = Some(Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                });
                r.noncurrent_version_expiration = Some(noncurrent(Some(1), None));
            })),
            S3ErrorCode::NotImplemented
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        let code = |r: LifecycleRule| to_rule(&r).unwrap_err().code().clone();
        let tag = Tag {
            key: Some("k".into()),
            value: Some("v".into()),
        };
        // Tags with an abort of uploads, a duplicate tag key, a bad tag: refused.
        assert_eq!(
            code(rule(|r| {
                r.filter.as_mut().unwrap().tag = Some(tag.clone());
                r.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
                    days_after_initiation: Some(1),
                });
            })),
            S3ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(rule(|r| {
                r.filter = Some(LifecycleRuleFilter {
                    and: Some(LifecycleRuleAndOperator {
                        tags: Some(vec![tag.clone(), tag.clone()]),
                        ..LifecycleRuleAndOperator::default()
                    }),
                    ..LifecycleRuleFilter::default()
                })
            })),
            S3ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(rule(|r| {
                r.filter.as_mut().unwrap().tag = Some(Tag {
                    key: Some(String::new()),
                    value: Some("v".into()),
                })
            })),
            S3ErrorCode::InvalidTag
        );
        assert_eq!(
            code(rule(|r| {
                r.filter.as_mut().unwrap().object_size_greater_than = Some(10);
            })),
            S3ErrorCode::NotImplemented
        );
        assert_eq!(
            code(rule(|r| r.expiration.as_mut().unwrap().days = Some(0))),
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            code(rule(|r| r.expiration = None)),
            S3ErrorCode::MalformedXML
        );
        assert_eq!(
            code(rule(
                |r| r.status = ExpirationStatus::from("Sometimes".to_owned())
            )),
            S3ErrorCode::MalformedXML
        );
    }
}
