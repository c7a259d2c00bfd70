#!/usr/bin/env bash
# The peers' own code, for the parity scripts (scripts/check_*) and the benchmarks' baselines:
# stable-audio-tools 0.0.19 in reference/sat and AudioCraft 1.3.0 in reference/audiocraft,
# each a venv that reuses the project's torch (.venv, made first as the README says) and gets
# only what the peer's imported code needs, without dependencies: their own pins (AudioCraft:
# torch 2.1.0) would replace the project's torch. Neither is a dependency of audiotools.
#
#   bash scripts/make_reference_venvs.sh [sat] [audiocraft]     # default: both
#
# An existing reference/<name> is left as it is (delete it to rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."

# What `stable_audio_tools.models.factory` and `.inference.sampling` import (k-diffusion pulls in
# most of it), and for scripts/check_sat_autoencoder_parity.py its training wrappers under
# PyTorch Lightning (their losses import descript-audiotools, whose module is also called
# `audiotools`: the reference venv does not see this project's editable install, so the two
# do not meet); torchvision is the build for the project's torch 2.11.
sat_packages=(
  stable-audio-tools==0.0.19 einops-exts==0.0.4 k-diffusion==0.1.1.post1 alias-free-torch==0.0.6
  scikit-image==0.26.0 lazy-loader==0.6 scipy==1.17.1 jsonmerge==1.9.2 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 dctorch==0.1.2
  torchdiffeq==0.2.5 torchsde==0.2.6 trampoline==0.1.2 torchvision==0.26.0 clean-fid==0.1.35
  clip-anytorch==2.6.0 ftfy==6.3.1 wcwidth==0.9.4
  pytorch-lightning==2.6.6 lightning-utilities==0.15.3 torchmetrics==1.9.0 encodec==0.1.1
  descript-audiotools==0.7.2 flatten-dict==0.5.0 julius==0.2.8 ffmpy==1.0.0
  importlib_resources==7.1.0 randomname==0.2.1 ema-pytorch==0.8.3
)
audiocraft_packages=(
  audiocraft==1.3.0 av==18.1.0 julius==0.2.8 num2words==0.5.14 docopt==0.6.2
)

# The venv being made, removed if the script stops before it is complete, so that a failed
# install is not kept as if it were a reference.
making=""
trap '[ -z "$making" ] || rm -rf "$making"' EXIT

site_packages() {
  "$1" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'
}

make_venv() {
  local name=$1; shift
  local venv=reference/$name
  if [ -x "$venv/bin/python" ]; then
    echo "$venv exists: kept"
    return
  fi
  local project_python=$PWD/.venv/bin/python
  if [ ! -x "$project_python" ] || [ ! -d "$(site_packages "$project_python")/torch" ]; then
    echo "error: no torch in $PWD/.venv: make the project's venv first (README, Set up)" >&2
    exit 2
  fi
  making=$venv
  # From the project's interpreter: the same Python version, which its torch was built for.
  "$project_python" -m venv "$venv"
  site_packages "$project_python" > "$(site_packages "$venv/bin/python")/project_torch.pth"
  "$venv/bin/pip" install -q --no-deps "$@"
  making=""
  echo "$venv: made"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(sat audiocraft)
for name in "${names[@]}"; do
  case $name in
    sat|audiocraft) ;;
    *) echo "error: unknown reference '$name' (valid: sat, audiocraft)" >&2; exit 2 ;;
  esac
done
for name in "${names[@]}"; do
  case $name in
    sat) make_venv sat "${sat_packages[@]}" ;;
    audiocraft) make_venv audiocraft "${audiocraft_packages[@]}" ;;
  esac
done
