#!/usr/bin/env bash
# README's first command, exactly as README writes it, in a new virtual environment on this clone with an
# empty SLAYER_HOME: what a newcomer runs on a fresh machine. Fails unless it ends with a written model card.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=$(awk '/^```bash$/ { getline; print; exit }' README.md)
if [ -z "$cmd" ]; then
  echo ".ci/readme_first_command.sh: README.md has no \`\`\`bash block" >&2
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
start=$(date +%s)
(
  source "$scratch/venv/bin/activate"
  unset PYTHONPATH
  export SLAYER_HOME="$scratch/home"
  echo "+ $cmd"
  bash -c "$cmd"
)
cards=$(find "$scratch/home" -iname '*card*.md' | wc -l)
echo "README's first command: $(( $(date +%s) - start )) s, virtual environment $(du -sh "$scratch/venv" | cut -f1)," \
     "$cards model card(s)"
[ "$cards" -gt 0 ] || { echo ".ci/readme_first_command.sh: the demo wrote no model card" >&2; exit 1; }
