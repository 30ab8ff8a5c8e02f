//! `invite-relay doctor`.

/// Runs the command with its arguments.
///
/// # Errors
/// A message for the operator when the command can't run.
pub async fn run(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("doctor is not available in this build".into())
}
