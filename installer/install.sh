#!/usr/bin/env bash
# Hygie Avatar installer for Linux and macOS. Safe to run again (idempotent).
#
#   installer/install.sh [--yes] [--venv DIR] [--editable] [--no-v4l2] [--pip-args "ARGS"]
#
#   --yes        answer yes to every question (CI; same as HYGIE_INSTALL_YES=1)
#   --venv DIR   virtual environment (default: $HYGIE_VENV or ~/.local/share/hygie-avatar/venv)
#   --editable   pip install -e (developers)
#   --no-v4l2    do not touch the Linux virtual camera module
#   --pip-args   extra arguments for pip (e.g. "--no-deps" offline)
#   --camera-only  only the virtual camera step (e.g. after a kernel update)
#
# Linux: offers to set up v4l2loopback persistently with the label the agent looks for:
#   /etc/modprobe.d/hygie-avatar.conf      options v4l2loopback ... card_label="Hygie Avatar" exclusive_caps=1
#   /etc/modules-load.d/hygie-avatar.conf  v4l2loopback
# and skips that step with a clear message where the kernel has no module support (containers).
# Test hooks: HYGIE_ETC_ROOT (instead of /) and HYGIE_MODULES_DIR (instead of /lib/modules).
set -euo pipefail

# the camera's name and module options: the same as core/live/camera_identity.py (tests/test_layering.py checks)
CAMERA_NAME="Hygie Avatar"
V4L2_OPTIONS="devices=1 video_nr=10 card_label=\"${CAMERA_NAME}\" exclusive_caps=1"
MODPROBE_OPTIONS="options v4l2loopback ${V4L2_OPTIONS}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HYGIE_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/hygie-avatar/venv}"
YES="${HYGIE_INSTALL_YES:-0}"
EDITABLE=0
V4L2=1
PIP_ARGS=""
CAMERA_ONLY=0
ETC="${HYGIE_ETC_ROOT:-}/etc"
MODULES_DIR="${HYGIE_MODULES_DIR:-/lib/modules}"

while [ $# -gt 0 ]; do
  case "$1" in
    --yes|-y) YES=1 ;;
    --venv) VENV="$2"; shift ;;
    --editable|-e) EDITABLE=1 ;;
    --no-v4l2) V4L2=0 ;;
    --pip-args) PIP_ARGS="$2"; shift ;;
    --camera-only) CAMERA_ONLY=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say()  { printf '==> %s\n' "$*"; }
skip() { printf '    skipped: %s\n' "$*"; }
die()  { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

confirm() {  # confirm "question" -> 0 yes / 1 no; --yes answers yes, no terminal answers no
  [ "$YES" = "1" ] && return 0
  [ -t 0 ] || { skip "$1 (no terminal to ask; re-run with --yes)"; return 1; }
  read -r -p "$1 [y/N] " a
  case "$a" in y|Y|yes|YES) return 0 ;; *) return 1 ;; esac
}

if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi

install_package() {
# ---------------------------------------------------------------- 1. Python + venv
PY=""
for c in python3.12 python3.11 python3.10 python3; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    PY="$(command -v "$c")"; break
  fi
done
[ -n "$PY" ] || die "Python >= 3.10 not found. Linux: sudo apt install python3 python3-venv; macOS: brew install python@3.11"

if [ -x "$VENV/bin/python" ]; then
  say "virtual environment exists: $VENV"
else
  say "creating virtual environment $VENV (with $PY)"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV" || die "cannot create a venv. Debian/Ubuntu: sudo apt install python3-venv"
fi

# ----------------------------------------------------------------- 2. the package
if [ "$(uname -s)" = "Linux" ] && ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
  say "PortAudio (audio input) is missing: sudo apt install libportaudio2 (Fedora: sudo dnf install portaudio)"
fi
say "installing hygie-avatar from $REPO"
# shellcheck disable=SC2086  # PIP_ARGS is a list of words on purpose
if [ "$EDITABLE" = "1" ]; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q $PIP_ARGS -e "$REPO[panel]"
else
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q $PIP_ARGS "$REPO[panel]"
fi
case " $PIP_ARGS " in
  *" --no-deps "*) "$VENV/bin/python" -c "import hygie.core.cli.main" || die "hygie is not importable in $VENV" ;;
  *) "$VENV/bin/hygie" --help >/dev/null || die "the 'hygie' command does not run from $VENV" ;;
esac
say "installed: $VENV/bin/hygie"
}

# ------------------------------------------------- 3. Linux virtual camera (v4l2loopback)
write_if_changed() {  # write_if_changed FILE CONTENT
  local f="$1" content="$2"
  if [ -f "$f" ] && [ "$(cat "$f")" = "$content" ]; then
    say "unchanged: $f"
    return 0
  fi
  $SUDO mkdir -p "$(dirname "$f")"
  printf '%s\n' "$content" | $SUDO tee "$f" >/dev/null
  say "wrote: $f"
}

camera_present() {
  for n in /sys/class/video4linux/*/name; do
    [ -f "$n" ] && [ "$(cat "$n")" = "$CAMERA_NAME" ] && return 0
  done
  return 1
}

setup_v4l2loopback() {
  say "virtual camera: v4l2loopback named '$CAMERA_NAME'"
  if [ "$V4L2" = "0" ]; then skip "--no-v4l2"; return 0; fi
  if [ ! -d "$MODULES_DIR/$(uname -r)" ]; then
    skip "this kernel ($(uname -r)) has no loadable module support here (container or VM without $MODULES_DIR)."
    echo "    Load it on the host instead: sudo modprobe v4l2loopback ${V4L2_OPTIONS}"
    return 0
  fi
  confirm "Set up the '$CAMERA_NAME' virtual camera now and at every boot (needs sudo)?" || {
    skip "virtual camera not set up; run this installer again or see 'hygie doctor'"; return 0; }
  if ! modinfo v4l2loopback >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      $SUDO apt-get install -y v4l2loopback-dkms || say "apt-get failed: install v4l2loopback-dkms by hand"
    elif command -v dnf >/dev/null 2>&1; then
      $SUDO dnf install -y akmod-v4l2loopback || say "dnf failed: install akmod-v4l2loopback by hand"
    else
      say "install the v4l2loopback kernel module with your package manager, then re-run"
    fi
  fi
  write_if_changed "$ETC/modprobe.d/hygie-avatar.conf" "$MODPROBE_OPTIONS"
  write_if_changed "$ETC/modules-load.d/hygie-avatar.conf" "v4l2loopback"
  if camera_present; then
    say "camera '$CAMERA_NAME' is already there"
  elif [ -d /sys/module/v4l2loopback ]; then
    say "v4l2loopback is loaded with another label; to switch now (closes apps using it):"
    echo "    sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback"
  elif $SUDO modprobe v4l2loopback; then
    say "loaded v4l2loopback"
  else
    say "modprobe failed. If Secure Boot is on, the module must be signed: reboot and enroll the DKMS key"
    echo "    (MOK prompt), or disable Secure Boot. 'mokutil --sb-state' shows it."
  fi
  if command -v mokutil >/dev/null 2>&1 && mokutil --sb-state 2>/dev/null | grep -qi "enabled"; then
    say "note: Secure Boot is enabled - unsigned modules are refused (see above)"
  fi
}

[ "$CAMERA_ONLY" = "1" ] || install_package
case "$(uname -s)" in
  Linux) setup_v4l2loopback ;;
  Darwin) say "virtual camera: install OBS Studio >= 30, click Start Virtual Camera once and approve the camera extension in System Settings > Privacy & Security" ;;
esac

# ------------------------------------------------------------------- 4. next steps
cat <<EOF

Next steps:
  1. $VENV/bin/hygie doctor              # checks audio, camera, OBS; prints fixes
  2. $VENV/bin/hygie enroll my_video.mp4 -o my_avatar --consent "Your Name"   # needs the train extra: pip install .[train]
  3. $VENV/bin/hygie run --avatar my_avatar
  OBS: Tools -> WebSocket Server Settings -> Enable, then: $VENV/bin/hygie obs setup
       and Tools -> Scripts -> + -> $REPO/plugin/hygie_obs.py
  Tip: add $VENV/bin to your PATH.
EOF
