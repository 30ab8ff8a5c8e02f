//! `invite-relay status`.

/// Runs the command with its arguments.
///
/// # Errors
/// A message for the operator when the command can't run.
pub async fn run(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("status is not available in this build".into())
}

/// Runs `resend` with its arguments.
///
/// # Errors
/// A message for the operator when the command can't run.
pub async fn resend(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("resend is not available in this build".into())
}
