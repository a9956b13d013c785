# The Temporal connection as the workers' configuration sees it. Nothing secret passes through here: for Temporal
# Cloud only the secrets' ARNs do, and each worker reads the certificate and key at boot into files that only the
# tttnn user can read (temporal.tlsCertFile / tlsKeyFile).

locals {
  cloud = var.mode == "cloud"
}
