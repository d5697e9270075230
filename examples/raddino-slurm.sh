#!/bin/sh
# Index folders with a Slurm array job, one shard per task, then merge the shards with a job
# that starts when every task has ended. Edit the four settings (or set them in the
# environment) and run `sh raddino-slurm.sh` on a node that can submit jobs.
DB=${DB:-/shared/xrays/raddino.db}    # the collection; shards go next to it (DB.shard-I-of-N)
PATHS=${PATHS:-/shared/xrays}         # folders to index (on a file system every node reads)
SHARDS=${SHARDS:-8}                   # array tasks, one shard each
CPUS=${CPUS:-8}                       # cores per task (raddino uses the cores it is given)
RADDINO=${RADDINO:-raddino}

jid=$(sbatch --parsable --job-name=raddino-index --array=0-$((SHARDS - 1)) \
      --cpus-per-task="$CPUS" --output="$DB.index-%A_%a.log" \
      --wrap "$RADDINO index --shard slurm --db '$DB' $PATHS")
# afterany, not afterok: a task whose shard holds unreadable images exits 1 after finishing
# it; the merge itself refuses a shard that is missing or whose run did not finish.
sbatch --parsable --job-name=raddino-merge --dependency="afterany:$jid" \
      --output="$DB.merge-%j.log" --wrap "$RADDINO merge --db '$DB'"
