#!/bin/sh
# test_slurm.sh RADDINO DATA SOURCE — a real single-node Slurm cluster, started here as root:
# munged with its own key and socket, slurmctld and slurmd with a generated slurm.conf (its own
# state, spool and log folders, free ports, proctrack/linuxproc, task/none, this node with its
# real CPUs). The README's script (examples/raddino-slurm.sh, which the README shows verbatim)
# runs with SBATCH_WAIT=1 (sbatch --wait): a 3-task array job of `raddino index --shard
# slurm`, then the dependent `raddino merge` job; the collection must equal one `raddino index`
# run (tests/shard_lib.sh, same_collection). Every daemon is stopped by the trap.
# Skipped (77) when not root or without slurm-wlm and munge, unless RADDINO_REQUIRE_CLUSTER=1.
# Waits are bounded polls (sinfo, files), never a fixed sleep standing in for a condition.
set -u
RADDINO=$1
DATA=$2
SOURCE=$3
PY=/usr/bin/python3
# The jobs run in another folder: absolute paths.
case $RADDINO in /*) ;; *) RADDINO=$PWD/$RADDINO ;; esac
case $DATA in /*) ;; *) DATA=$PWD/$DATA ;; esac
case $SOURCE in /*) ;; *) SOURCE=$PWD/$SOURCE ;; esac
TMP=$(mktemp -d)
chmod 755 "$TMP"
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shard_lib.sh"

[ "$(id -u)" = 0 ] || skip_or_fail "not root (the test starts slurmctld, slurmd and munged)"
for prog in munged slurmctld slurmd sbatch sinfo scontrol; do
    command -v $prog >/dev/null 2>&1 || [ -x /usr/sbin/$prog ] ||
        skip_or_fail "no $prog (Debian packages slurm-wlm and munge)"
done
PATH=$PATH:/usr/sbin

# --- munge ---
mkdir -p "$TMP/munge" "$TMP/state" "$TMP/spool" "$TMP/log"
chmod 700 "$TMP/munge"
dd if=/dev/urandom of="$TMP/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$TMP/munge/munge.key"
SOCK=$TMP/munge/munge.socket
munged --foreground --force --key-file="$TMP/munge/munge.key" --socket="$SOCK" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/log/munged.log" \
    --seed-file="$TMP/munge/munged.seed" 2>"$TMP/log/munged.err" &
PIDS="$PIDS $!"
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -S "$SOCK" ] || { echo "FAIL: munged did not start"; cat "$TMP/log/munged.err" "$TMP/log/munged.log" 2>/dev/null; exit 1; }

# --- slurm.conf ---
HOST=$(hostname -s)
PORTS=$($PY -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
set -- $PORTS
NODE=$(slurmd -C | head -1 | sed 's/RealMemory=[0-9]*/RealMemory=1000/')
CONF=$TMP/slurm.conf
cat >"$CONF" <<CONFEOF
ClusterName=raddinotest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$1
SlurmdPort=$2
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
$NODE NodeAddr=127.0.0.1
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFEOF
export SLURM_CONF=$CONF
slurmctld -D -c -f "$CONF" >"$TMP/log/slurmctld.out" 2>&1 &
PIDS="$PIDS $!"
slurmd -D -f "$CONF" -N "$HOST" >"$TMP/log/slurmd.out" 2>&1 &
PIDS="$PIDS $!"
# The node is idle when slurmd has registered with slurmctld (at most 60 s).
i=0
state=""
while [ $i -lt 600 ]; do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null)
    [ "$state" = idle ] && break
    sleep 0.1
    i=$((i + 1))
done
if [ "$state" != idle ]; then
    echo "FAIL: the node is not idle after 60 s (state '$state')"
    tail -5 "$TMP/log/slurmctld.log" "$TMP/log/slurmd.log" "$TMP/log/slurmctld.out" "$TMP/log/slurmd.out" 2>/dev/null
    exit 1
fi
ok

# --- the README's script, with sbatch --wait ---
unset RADDINO_DB RADDINO_TEST_KILL_AFTER SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT
export RADDINO_MODEL="$DATA/models/tiny" RADDINO_THREADS=1 OMP_NUM_THREADS=1
C=$TMP/col
make_folder "$C"
expect 1 "single-process index (2 broken files)" -- "$RADDINO" index --quiet --db "$TMP/one.db" "$C"

# The README shows examples/raddino-slurm.sh as it is.
$PY - "$SOURCE/README.md" "$SOURCE/examples/raddino-slurm.sh" <<'PYEOF' && ok || fail "README does not show examples/raddino-slurm.sh verbatim"
import sys
readme, script = open(sys.argv[1]).read(), open(sys.argv[2]).read()
indented = "".join(("    " + l if l.strip() else l) for l in script.splitlines(True))
sys.exit(0 if indented in readme else 1)
PYEOF

M=$TMP/main.db
(cd "$TMP" && DB=$M PATHS=$C SHARDS=3 CPUS=1 RADDINO=$RADDINO SBATCH_WAIT=1 \
    sh "$SOURCE/examples/raddino-slurm.sh") >"$TMP/sbatch.out" 2>"$TMP/sbatch.err"
echo "--- sbatch output:"
cat "$TMP/sbatch.out" "$TMP/sbatch.err"
for i in 0 1 2; do [ -f "$M.shard-$i-of-3" ] && ok || fail "no shard $i"; done
echo "--- job logs:"
for f in "$M".index-*.log "$M".merge-*.log; do echo "== $(basename "$f")"; cat "$f"; done
grep -q "raddino merge: 3 shards into $M" "$M".merge-*.log && ok || fail "the merge job did not merge"
same_collection "$TMP/one.db" "$M" "Slurm array job + merge job"
finish test_slurm
