//! DeleteObject and DeleteObjects, and the removal of displaced bytes.

use super::*;

impl GatewayS3 {
    /// Deletes bytes the ledger no longer references; what cannot be deleted now is queued
    /// for the cleanup worker and charged to the backend's orphan bytes.
    pub(super) async fn remove_displaced(&self, displaced: Vec<Displaced>, reason: &str) {
        futures::stream::iter(displaced)
            .for_each_concurrent(DELETE_CONCURRENCY, |d| self.remove_one(d, reason))
            .await;
    }

    pub(super) async fn remove_one(&self, d: Displaced, reason: &str) {
        let deleted = match self.backends.get(&d.backend) {
            Some(b) => match b.store.delete(&keys::path(&d.storage_key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            None => Err("backend not configured".to_owned()),
        };
        match (deleted, &d.claim) {
            (Ok(()), Some(claim)) => {
                // Still queued (claimed by this instance) if this fails: the worker finishes it.
                if let Err(e) = self.ledger.complete_cleanup(claim).await {
                    tracing::warn!(backend = %d.backend, key = %d.storage_key, error = %e, "could not complete the cleanup row");
                }
            }
            (Ok(()), None) => {}
            (Err(e), Some(_)) => {
                tracing::warn!(backend = %d.backend, key = %d.storage_key, error = %e, "delete failed; left to the cleanup worker");
                self.metrics.event("cleanup_enqueued");
            }
            (Err(e), None) => {
                tracing::warn!(backend = %d.backend, key = %d.storage_key, error = %e, "delete failed; queued for cleanup");
                self.metrics.event("cleanup_enqueued");
                if let Err(e) = self.ledger.orphan(&d, reason).await {
                    tracing::error!(backend = %d.backend, key = %d.storage_key, error = %e, "could not queue cleanup: bytes orphaned untracked");
                }
            }
        }
    }

    pub(super) async fn delete_key(&self, bucket: &str, key: &str) -> S3Result<()> {
        let displaced = self
            .ledger
            .delete(&keys::ledger_key(bucket, key))
            .await
            .map_err(write_err)?;
        self.remove_displaced(displaced, "deleted").await;
        Ok(())
    }

    pub(super) async fn do_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = &req.input;
        self.bucket(&i.bucket).await?;
        // Absent keys answer 204 too, as S3 does. The bucket's versioning state, read in the
        // delete's transaction, decides between removing and writing a delete marker.
        let d = self
            .delete_one(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            version_id: d.version_id,
            delete_marker: d.delete_marker.then_some(true),
            ..DeleteObjectOutput::default()
        }))
    }

    pub(super) async fn do_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        let check = self.bucket(&i.bucket).await.and_then(|()| {
            if i.delete.objects.len() > MAX_DELETE_KEYS {
                Err(s3_error!(
                    MalformedXML,
                    "at most {MAX_DELETE_KEYS} keys per request"
                ))
            } else {
                Ok(())
            }
        });
        let versioned = match check {
            Ok(()) => {
                i.delete.objects.iter().any(|o| o.version_id.is_some())
                    || self
                        .ledger
                        .versioning(&i.bucket)
                        .await
                        .map_err(write_err)?
                        .is_versioned()
            }
            Err(_) => false,
        };
        match check {
            Err(e) => Err(e),
            // Versioned: each key in its own transaction (markers, version ids).
            Ok(()) if versioned => Ok(self.delete_versions(&i.bucket, &i.delete).await),
            Ok(()) => {
                let quiet = i.delete.quiet.unwrap_or(false);
                let mut deleted = Vec::new();
                let mut errors = Vec::new();
                let lkeys: Vec<String> = i
                    .delete
                    .objects
                    .iter()
                    .map(|o| keys::ledger_key(&i.bucket, &o.key))
                    .collect();
                // One ledger transaction for the whole batch; the bytes go afterwards.
                match self.ledger.delete_many(&lkeys).await {
                    Ok(map) => {
                        let bytes: Vec<Displaced> = map.into_values().flatten().collect();
                        self.remove_displaced(bytes, "deleted").await;
                        if !quiet {
                            deleted = i
                                .delete
                                .objects
                                .iter()
                                .map(|o| DeletedObject {
                                    key: Some(o.key.clone()),
                                    ..DeletedObject::default()
                                })
                                .collect();
                        }
                    }
                    // The batch was refused for one of its keys (too long, say): each key is
                    // deleted on its own, so only the bad ones report an error.
                    Err(StoreError::InvalidInput { .. }) => {
                        for o in &i.delete.objects {
                            match self.delete_key(&i.bucket, &o.key).await {
                                Ok(()) if quiet => {}
                                Ok(()) => deleted.push(DeletedObject {
                                    key: Some(o.key.clone()),
                                    ..DeletedObject::default()
                                }),
                                Err(e) => errors.push(Error {
                                    code: Some(e.code().as_str().to_owned()),
                                    key: Some(o.key.clone()),
                                    message: e.message().map(str::to_owned),
                                    ..Error::default()
                                }),
                            }
                        }
                    }
                    Err(e) => {
                        let e = write_err(e);
                        errors = i
                            .delete
                            .objects
                            .iter()
                            .map(|o| Error {
                                code: Some(e.code().as_str().to_owned()),
                                key: Some(o.key.clone()),
                                message: e.message().map(str::to_owned),
                                ..Error::default()
                            })
                            .collect();
                    }
                }
                Ok(S3Response::new(DeleteObjectsOutput {
                    deleted: Some(deleted),
                    errors: (!errors.is_empty()).then_some(errors),
                    ..DeleteObjectsOutput::default()
                }))
            }
        }
    }

    /// DeleteObjects in a versioned bucket (or naming versions): each key is deleted as
    /// DeleteObject does, and its answer names the version and marker.
    async fn delete_versions(&self, bucket: &str, del: &Delete) -> S3Response<DeleteObjectsOutput> {
        let quiet = del.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in &del.objects {
            match self
                .delete_one(bucket, &o.key, o.version_id.as_deref())
                .await
            {
                Ok(_) if quiet => {}
                Ok(d) => deleted.push(DeletedObject {
                    key: Some(o.key.clone()),
                    version_id: o.version_id.clone(),
                    delete_marker: d.delete_marker.then_some(true),
                    delete_marker_version_id: if o.version_id.is_none() {
                        d.version_id
                    } else {
                        None
                    }
                    .filter(|_| d.delete_marker),
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(o.key.clone()),
                    message: e.message().map(str::to_owned),
                    version_id: o.version_id.clone(),
                }),
            }
        }
        S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..DeleteObjectsOutput::default()
        })
    }
}
