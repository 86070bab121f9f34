# Sourced by the scripts that need root (network namespaces, XDP, bpffs, apt-get).
# as_root SCRIPT [ARGS...]: returns when already root; otherwise re-runs `bash SCRIPT ARGS...`
# under sudo (keeping the caller's environment and PATH, so the same node and npm run), or exits
# with a one-line reason when there is no sudo.
as_root() {
  if [[ $EUID -eq 0 ]]; then return 0; fi
  local script=$1
  shift
  if command -v sudo >/dev/null 2>&1; then
    printf '%s: not root; re-running with sudo\n' "$(basename "$script")" >&2
    exec sudo -E env "PATH=$PATH" bash "$script" "$@"
  fi
  printf '%s: needs root (network namespaces, XDP, bpffs): run it as root, or as a user who can use sudo\n' "$(basename "$script")" >&2
  exit 1
}
