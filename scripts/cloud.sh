#!/usr/bin/env bash
# Cloud GPU helper: one script, one subcommand per Makefile target (make cloud-*).
#
#   scripts/cloud.sh setup                 sync the code, install uv remotely, uv sync --frozen
#   scripts/cloud.sh sync                  rsync the code (no outputs, .venv, activations)
#   scripts/cloud.sh run EXP [MODEL] [ARGS...]
#                                          start experiments/EXP/run.py in tmux (nohup if no
#                                          tmux), output to logs/; GPUS=n runs it under
#                                          `accelerate launch --num_processes n` (one process per
#                                          GPU, each its share of items, rank 0 merges;
#                                          llmct.io.distributed); accelerate's own config
#                                          (`accelerate config`) covers several nodes
#   scripts/cloud.sh status                GPUs, running sessions, last line of recent logs
#   scripts/cloud.sh logs [EXP]            tail the newest log (FOLLOW=1 to follow)
#   scripts/cloud.sh fetch                 copy remote outputs into outputs/cloud/<stamp>/, then
#                                          into experiments/ with --update (newer local files kept)
#   scripts/cloud.sh down                  fetch reminder, then SHUTDOWN_CMD (asks first)
#
# Connection settings come from .env.session (CLOUD_ENV=path to use another file); see
# .env.session.example. CLOUD_DRY_RUN=1 prints every ssh/rsync/shutdown command instead of
# running it (nothing is contacted). The file is parsed, never sourced.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${CLOUD_ENV:-$ROOT/.env.session}"
DRY="${CLOUD_DRY_RUN:-0}"
REQUIRED=(SSH_HOST SSH_PORT SSH_USER SSH_KEY REMOTE_DIR)
declare -A HELP=(
  [SSH_HOST]="host name or IP of the GPU machine (e.g. ssh5.vast.ai)"
  [SSH_PORT]="its SSH port (e.g. 22 or the port your provider shows)"
  [SSH_USER]="the login user (e.g. root)"
  [SSH_KEY]="path to the private key allowed on that machine (e.g. ~/.ssh/id_ed25519)"
  [REMOTE_DIR]="where the repository lives remotely (e.g. /workspace/llmct)"
)
# Code only: results, environments and caches never travel up.
SYNC_EXCLUDES=(.git/ .venv/ outputs/ 'experiments/*/outputs/' activations/ '*.npz'
               '*.safetensors' __pycache__/ .pytest_cache/ .ruff_cache/ .cache/ logs/
               .env.session .env)

die() { echo "error: $*" >&2; exit 1; }

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

load_env() {
  [[ -f "$ENV_FILE" ]] || die "no $ENV_FILE; copy .env.session.example to .env.session and fill it in"
  local line key value
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] \
      || die "$ENV_FILE: cannot parse line: $line"
    key="${BASH_REMATCH[2]}"
    value="${BASH_REMATCH[3]}"
    value="${value%"${value##*[![:space:]]}"}"            # trailing blanks
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    fi
    printf -v "CFG_$key" '%s' "$value"
  done < "$ENV_FILE"
  local var missing=()
  for var in "${REQUIRED[@]}"; do
    local ref="CFG_$var"
    [[ -n "${!ref:-}" ]] || missing+=("$var")
  done
  if ((${#missing[@]})); then
    for var in "${missing[@]}"; do
      echo "error: $ENV_FILE is missing $var: ${HELP[$var]}" >&2
    done
    exit 1
  fi
  [[ "$CFG_SSH_PORT" =~ ^[0-9]+$ ]] || die "$ENV_FILE: SSH_PORT must be a number, got '$CFG_SSH_PORT'"
  KEY="${CFG_SSH_KEY/#\~/$HOME}"
  [[ -f "$KEY" ]] || die "$ENV_FILE: SSH_KEY file '$KEY' does not exist"
  HOST="$CFG_SSH_USER@$CFG_SSH_HOST"
  RDIR="$CFG_REMOTE_DIR"
  SSH_OPTS=(-p "$CFG_SSH_PORT" -i "$KEY" -o StrictHostKeyChecking=accept-new
            -o ServerAliveInterval=30 -o ConnectTimeout=20)
  RSYNC_SSH="ssh -p $CFG_SSH_PORT -i '$KEY' -o StrictHostKeyChecking=accept-new -o ServerAliveInterval=30"
}

# Run a command, or print it (shell-quoted) under CLOUD_DRY_RUN=1.
run() {
  if [[ "$DRY" == 1 ]]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

# Run one shell command line on the machine (printed verbatim under CLOUD_DRY_RUN=1).
remote() {
  if [[ "$DRY" == 1 ]]; then
    printf '+ ssh'; printf ' %q' "${SSH_OPTS[@]}" "$HOST"; printf " '%s'\n" "$1"
  else
    ssh "${SSH_OPTS[@]}" "$HOST" "$1"
  fi
}

q() { printf '%q' "$1"; }

cmd_sync() {
  local ex=() e
  for e in "${SYNC_EXCLUDES[@]}"; do
    [[ "$e" == .env && "${CFG_SYNC_DOTENV:-0}" == 1 ]] && continue  # HF_TOKEN for gated models
    ex+=(--exclude "$e")
  done
  remote "mkdir -p $(q "$RDIR")"
  run rsync -az --info=stats1 "${ex[@]}" -e "$RSYNC_SSH" "$ROOT/" "$HOST:$RDIR/"
}

cmd_setup() {
  cmd_sync
  remote "set -e; export PATH=\$HOME/.local/bin:\$PATH; \
command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh; \
export PATH=\$HOME/.local/bin:\$PATH; cd $(q "$RDIR") && uv sync --frozen && \
uv run python -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available(), torch.cuda.device_count(), \"GPU(s)\")'"
}

cmd_run() {
  local exp="${1:-${EXP:-}}"
  [[ -n "$exp" ]] || die "run needs an experiment: scripts/cloud.sh run 02_probes [MODEL] [ARGS...] (or EXP=...)"
  shift || true
  local model="${1:-${MODEL:-default}}"
  shift || true
  [[ -f "$ROOT/experiments/$exp/run.py" ]] || die "no experiments/$exp/run.py (names look like 02_probes)"
  local gpus="${GPUS:-1}" extra="" a
  [[ -z "${SHARDS:-}" ]] || die "SHARDS is gone: GPUS=n runs one accelerate launch over n GPUs (docs/cloud-gpu.md)"
  [[ "$gpus" =~ ^[1-9][0-9]*$ ]] || die "GPUS must be a positive integer, got '$gpus'"
  for a in "$@" ${ARGS:-}; do extra+=" $(q "$a")"; done
  local stamp slug session cmd log
  stamp="$(date -u +%Y%m%d-%H%M%S)"
  slug="$(echo "${model##*/}" | tr '[:upper:] ' '[:lower:]-')"
  session="llmct-$exp-$slug"
  log="logs/$exp-$slug-$stamp.log"
  if ((gpus > 1)); then
    cmd="uv run accelerate launch --num_processes $gpus experiments/$exp/run.py --model $(q "$model")$extra"
  else
    cmd="uv run python experiments/$exp/run.py --model $(q "$model")$extra"
  fi
  remote "set -e; export PATH=\$HOME/.local/bin:\$PATH; cd $(q "$RDIR"); mkdir -p logs; \
if tmux has-session -t $session 2>/dev/null; then echo 'tmux session $session is still running (scripts/cloud.sh status)'; exit 1; fi; \
echo $(q "\$ $cmd") > $log; \
if command -v tmux >/dev/null; then tmux new-session -d -s $session -c $(q "$RDIR") $(q "export PATH=\$HOME/.local/bin:\$PATH; $cmd >> $log 2>&1; echo \"[exit \$?]\" >> $log"); \
echo 'started tmux session $session -> $RDIR/$log'; \
else nohup bash -c $(q "$cmd >> $log 2>&1; echo \"[exit \$?]\" >> $log") >/dev/null 2>&1 & \
echo 'started with nohup -> $RDIR/$log'; fi"
}

cmd_status() {
  remote "cd $(q "$RDIR") 2>/dev/null || { echo 'no $RDIR yet: run setup'; exit 0; }; \
nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'; \
echo '--- sessions'; tmux ls 2>/dev/null || echo 'no tmux sessions'; \
echo '--- recent logs'; for f in \$(ls -t logs/*.log 2>/dev/null | head -n 8); do echo \"\$f: \$(tail -n 1 \$f | cut -c1-160)\"; done"
}

cmd_logs() {
  local exp="${1:-${EXP:-}}" n="${LINES_SHOWN:-100}" tail_cmd="tail -n"
  [[ "${FOLLOW:-0}" == 1 ]] && tail_cmd="tail -f -n"
  remote "cd $(q "$RDIR") && f=\$(ls -t logs/${exp}*.log 2>/dev/null | head -n 1) && \
[ -n \"\$f\" ] && echo \"==> \$f\" && $tail_cmd $n \"\$f\" || echo 'no logs${exp:+ for $exp} yet'"
}

cmd_fetch() {
  local stamp dest filters=()
  stamp="$(date -u +%Y%m%d-%H%M%S)"
  dest="$ROOT/outputs/cloud/$stamp"
  if [[ "${FETCH_ACTIVATIONS:-0}" != 1 ]]; then
    filters+=(--exclude 'activations/' --exclude '*.npz')
  fi
  # 1) a dated, untouched copy of everything the remote produced
  run mkdir -p "$dest/experiments" "$dest/logs"
  run rsync -az --prune-empty-dirs "${filters[@]}" --include '*/' --include '*/outputs/**' \
    --exclude '*' -e "$RSYNC_SSH" "$HOST:$RDIR/experiments/" "$dest/experiments/"
  run rsync -az -e "$RSYNC_SSH" "$HOST:$RDIR/logs/" "$dest/logs/"
  # 2) into the working tree: new files only; a local file is never replaced (results are
  #    written once), and the cross-model summary is always rebuilt locally (make summary)
  if [[ "$DRY" != 1 ]]; then
    local kept
    kept="$(rsync -rcn --existing --exclude '12_summary/' --out-format='%n' \
            "$dest/experiments/" "$ROOT/experiments/" | grep -v '/$' || true)"
    if [[ -n "$kept" ]]; then
      echo "kept the local copy of these files (the remote's differ; see $dest/experiments/):"
      echo "$kept" | sed 's/^/  experiments\//'
    fi
  fi
  run rsync -a --ignore-existing --exclude '12_summary/' "$dest/experiments/" "$ROOT/experiments/"
  echo "fetched into outputs/cloud/$stamp (remote copy) and experiments/*/outputs (new files" \
       "only); run 'make summary' to rebuild the cross-model table"
}

cmd_down() {
  echo "reminder: 'scripts/cloud.sh fetch' first; everything on the machine is lost when it goes down."
  if [[ -z "${CFG_SHUTDOWN_CMD:-}" ]]; then
    echo "no SHUTDOWN_CMD in $ENV_FILE: stop the instance${CFG_INSTANCE_ID:+ $CFG_INSTANCE_ID} in your provider's console (billing continues until you do)."
    return 0
  fi
  if [[ -z "${CFG_INSTANCE_ID:-}" && "$CFG_SHUTDOWN_CMD" == *INSTANCE_ID* ]]; then
    die "$ENV_FILE: SHUTDOWN_CMD uses \$INSTANCE_ID but INSTANCE_ID is empty"
  fi
  local cmd="${CFG_SHUTDOWN_CMD//\$INSTANCE_ID/${CFG_INSTANCE_ID:-}}"
  cmd="${cmd//\$\{INSTANCE_ID\}/${CFG_INSTANCE_ID:-}}"
  if [[ "$DRY" != 1 && "${CLOUD_YES:-0}" != 1 ]]; then
    read -r -p "run '$cmd'? [y/N] " answer
    [[ "$answer" == y || "$answer" == Y ]] || { echo "not shut down"; return 0; }
  fi
  run bash -c "$cmd"
}

main() {
  local sub="${1:-help}"
  shift || true
  case "$sub" in
    help|-h|--help) usage; return 0 ;;
    setup|sync|run|status|logs|fetch|down) ;;
    *) usage >&2; die "unknown subcommand '$sub'" ;;
  esac
  load_env
  "cmd_$sub" "$@"
}

main "$@"
