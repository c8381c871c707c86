#!/bin/sh
# One-shot MinIO setup, run by the minio-init service (minio/mc image) on every `up`; every step is
# idempotent. Creates the platform's buckets with versioning, the retention rules of DESIGN §4 and the
# platform's own MinIO user. Settings come from the service's environment (docker-compose.yml).
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${MINIO_APP_ACCESS_KEY:?}" "${MINIO_APP_SECRET_KEY:?}"
: "${BUCKET_RAW:?}" "${BUCKET_PROCESSED:?}" "${BUCKET_ANALYTICS:?}" "${BUCKET_BACKUPS:?}"
: "${RAW_RETENTION_DAYS:?}" "${BACKUPS_RETENTION_DAYS:?}" "${NONCURRENT_RETENTION_DAYS:?}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

for bucket in "$BUCKET_RAW" "$BUCKET_PROCESSED" "$BUCKET_ANALYTICS" "$BUCKET_BACKUPS"; do
    mc mb --ignore-existing "local/$bucket"
    mc version enable "local/$bucket"
done

# Replaces the bucket's lifecycle with one expiry rule. With versioning on, expiring an object only
# hides it behind a delete marker; the noncurrent rule is what finally frees the space.
expire_after() {
    # No lifecycle yet is an error for `rm`, and the expected state on a first run.
    mc ilm rule rm --all --force "local/$1" >/dev/null 2>&1 || true
    mc ilm rule add --expire-days "$2" --noncurrent-expire-days "$NONCURRENT_RETENTION_DAYS" "local/$1"
}
expire_after "$BUCKET_RAW" "$RAW_RETENTION_DAYS"
expire_after "$BUCKET_BACKUPS" "$BACKUPS_RETENTION_DAYS"

# The platform's services use this user, never the root account. `user add` also resets the secret,
# so a changed MINIO_APP_SECRET_KEY takes effect on the next run. Attaching a policy that is already
# attached is an error, hence the check.
mc admin user add local "$MINIO_APP_ACCESS_KEY" "$MINIO_APP_SECRET_KEY"
user_info="$(mc admin user info local "$MINIO_APP_ACCESS_KEY")"
case "$user_info" in
    *readwrite*) ;;
    *) mc admin policy attach local readwrite --user "$MINIO_APP_ACCESS_KEY" ;;
esac

echo "minio-init: buckets, versioning, lifecycle and the platform user are in place"
