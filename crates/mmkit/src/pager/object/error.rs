//! A store's error as mmkit's: the URL, the kind a caller can act on, the store's message
//! in one line, and a hint.

use object_store::Error as StoreError;

use crate::error::{Error, ErrorKind, Op};

/// `e` from `url` during `op`, as an [`Error`] naming the URL and the cause.
pub(super) fn store_error(op: Op, url: &str, e: &StoreError) -> Error {
    let local = url.starts_with("file:");
    let (kind, hint) = match e {
        StoreError::NotFound { .. } if local => (
            ErrorKind::NotFound,
            "check the path: file:// URLs take an absolute path to a regular file",
        ),
        StoreError::NotFound { .. } => (
            ErrorKind::NotFound,
            "check the bucket (or container) and the key; list them with the store's own tool",
        ),
        StoreError::PermissionDenied { .. } | StoreError::Unauthenticated { .. } => (
            ErrorKind::Os,
            "check the credentials in the environment (AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY) and \
             AWS_REGION / AWS_ENDPOINT",
        ),
        StoreError::NotSupported { .. } => (
            ErrorKind::Unsupported,
            "the server cannot serve this (a plain HTTP server may not serve byte ranges, \
             which paging needs): download the object instead, or serve it from one that can",
        ),
        StoreError::Precondition { .. } => (
            ErrorKind::StorageFault,
            "the object was replaced after it was opened; open it again to read the new version",
        ),
        // With no credentials in the environment, the S3 client asks the instance
        // metadata service (169.254.169.254), which answers only on a cloud machine.
        _ if one_line(e).contains("169.254.169.254") => (
            ErrorKind::NoReadAccess,
            "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
             AWS_REGION, AWS_ENDPOINT for a server of your own)",
        ),
        _ => (
            ErrorKind::StorageFault,
            "the store did not answer in time, or failed after the retries: check that it is \
             up and reachable (AWS_ENDPOINT, AWS_ALLOW_HTTP for http://)",
        ),
    };
    let err = if matches!(
        e,
        StoreError::PermissionDenied { .. } | StoreError::Unauthenticated { .. }
    ) {
        Error::os(op, rustix::io::Errno::ACCESS)
    } else {
        Error::new(op, kind)
    };
    let detail = if matches!(e, StoreError::Precondition { .. }) {
        "the object changed since it was opened: the store refused its ETag (If-Match)".into()
    } else {
        one_line(e)
    };
    err.with_path(Some(std::path::Path::new(url)))
        .detail(detail)
        .hint(hint)
}

/// The error and its causes in one line, each cause once (the stores often repeat a
/// cause's text in their own message).
pub(super) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text.replace('\n', " ")
}
