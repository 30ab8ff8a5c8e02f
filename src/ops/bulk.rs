//! `invite-relay bulk FILE.csv`: invitations from a CSV file through the webhook's pipeline.

/// Runs the `bulk` command with its arguments (after the command's name).
///
/// # Errors
/// A message for the operator when the command can't run.
pub async fn run(_args: &[String]) -> Result<std::process::ExitCode, String> {
    Err("bulk is not available in this build".into())
}
