#!/bin/bash
# tests/slurm/cluster.sh - a real single-node Slurm 22.05 cluster for nomade's test suite (Debian 12),
# with munge, MariaDB + slurmdbd accounting, slurmctld and slurmd, started directly as root (no systemd).
#
#   cluster.sh up              bring the cluster up (idempotent; ~1 s when already up and unchanged)
#   cluster.sh down [--purge]  stop the daemons; --purge also deletes Slurm state, logs and the MariaDB data
#   cluster.sh status          print daemon / node state; exit 0 only when everything answers
#
# `up` installs the Debian packages when missing, creates the test users, writes /etc/slurm/*.conf from
# the knobs below and (re)starts only what is not running - or everything Slurm-side when slurm.conf changed
# (plugin changes such as JobSubmitPlugins or PrologSlurmctld need a restart, not `scontrol reconfigure`).
# The generated slurm.conf is a function of the knobs: an `up` without a knob removes what an earlier
# `up` with it added. Concurrent `up`/`down` calls are serialised with flock.
#
# Knobs (environment, all optional; a path knob empty/unset = feature off):
#   NOMADE_SLURM_JOB_SUBMIT_LUA=path  copied to /etc/slurm/job_submit.lua, sets JobSubmitPlugins=lua
#                                    (self-contained, or loading other files by absolute path)
#   NOMADE_SLURM_JOB_SUBMIT_FILES="a.lua b.lua"  extra files copied next to job_submit.lua (/etc/slurm/)
#   NOMADE_SLURM_PROLOG=path          Prolog=          (slurmd, as root; also sets PrologFlags=Alloc)
#   NOMADE_SLURM_EPILOG=path          Epilog=          (slurmd, as root; exit != 0 drains the node)
#   NOMADE_SLURM_TASKPROLOG=path      TaskProlog=      (as the job's user; "export X=Y" / "print ...")
#   NOMADE_SLURM_TASKEPILOG=path      TaskEpilog=
#   NOMADE_SLURM_PROLOG_CTLD=path     PrologSlurmctld= (slurmctld, as root; exit != 0 cancels the job)
#   NOMADE_SLURM_EPILOG_CTLD=path     EpilogSlurmctld=
#   NOMADE_SLURM_MAILPROG=path        MailProg=        (unset: Slurm's default /bin/mail, absent here)
#   NOMADE_SLURM_EXTRA_CONF="K=V\nK2=V2"  lines appended verbatim to slurm.conf (real newlines or '\n')
#   NOMADE_SLURM_CGROUP=auto          auto|yes|no: task/cgroup + proctrack/cgroup (cgroup v1), needed for
#                                     OUT_OF_MEMORY; `no` = linuxproc (a memory kill then shows FAILED 0:9)
#   NOMADE_SLURM_CLUSTER=lab          ClusterName (also the sacctmgr cluster)
#   NOMADE_SLURM_DEFMEMPERCPU=500     DefMemPerCPU in MiB (without it a job gets the whole node's memory)
#   NOMADE_SLURM_CPUS=8               CPUs the node advertises (SlurmdParameters=config_overrides): more
#                                     than the 2 real cores so test jobs (mostly sleeps) run in parallel
#   NOMADE_SLURM_MAXTIME=1-00:00:00   MaxTime of partition `debug` (jobs asking more stay PENDING)
#   NOMADE_SLURM_SMOKE=1              run one sbatch job on a fresh start and wait for its sacct record
#   NOMADE_SLURM_TEST_USERS="alice bob carol"  unprivileged users (carol is also in group nomade-admins)
# Paths given to hook knobs must be readable (and executable) by root/slurmd; they are used in place,
# not copied (only job_submit.lua is copied, because slurmctld loads it from /etc/slurm).
#
# Fixed layout: partition `debug` (default), node `hostname -s` (added to /etc/hosts if it does not
# resolve), account `research` holding root and the test users, Unix group `nomade-admins` = {carol}.
# Logs: /var/log/slurm/{slurmctld,slurmd,slurmdbd}.log; pids in /run.
set -euo pipefail
umask 022   # slurm.conf and friends must be readable by every user, whatever umask we inherit
T_START=$(date +%s.%N)
ETC=/etc/slurm
NODE=$(hostname -s)
CLUSTER=${NOMADE_SLURM_CLUSTER:-lab}
DBPASS=slurmdbpass
TEST_USERS=${NOMADE_SLURM_TEST_USERS:-alice bob carol}
ADMIN_GROUP=nomade-admins
ADMIN_USERS="carol"
STAMP_DIR=/var/lib/nomade-test-cluster

el() { awk -v a="$(date +%s.%N)" -v b="$T_START" 'BEGIN{printf "%.1f", a-b}'; }
log() { printf '[cluster.sh %5ss] %s\n' "$(el)" "$*" >&2; }
die() {
  log "ERROR: $*"
  for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/slurm/slurmdbd.log; do
    [ -f $f ] && { echo "--- tail $f" >&2; tail -15 $f >&2; }
  done
  exit 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 d=$2; shift 2; local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge $end ] && die "timeout waiting for $d"; sleep 0.2; done
}
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }
settle_completing() { # settle_completing SECONDS: wait (bounded) until no job is completing
  local end=$(( $(date +%s) + $1 ))
  while [ -n "$(squeue -h -t CG -o %i 2>/dev/null)" ]; do
    [ "$(date +%s)" -ge $end ] && { log "jobs still completing after $1 s: $(squeue -h -t CG -o %i | tr '\n' ' ')"; return 0; }
    sleep 0.5
  done
}

# ================================================================ packages
PKGS="munge slurmctld slurmd slurm-client slurmdbd mariadb-server lua5.1 lua-socket lua-filesystem lua-cjson"
ensure_packages() {
  local missing="" p
  # dpkg-query exits 1 when a package is unknown: that is the case being detected, not an error
  missing=$({ dpkg-query -W -f='${Package} ${Status}\n' $PKGS 2>/dev/null || true; } \
    | awk '$NF=="installed"{print $1}' | sort | comm -13 - <(tr ' ' '\n' <<<"$PKGS" | sort) | tr '\n' ' ')
  [ -z "${missing// /}" ] && return 0
  log "installing: $missing"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d exit 101 keeps the packages' init scripts from starting daemons; we start them ourselves
  local created_policy=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; created_policy=1; }
  if ! apt-get install -y --no-install-recommends $missing >/tmp/cluster-sh-apt.log 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update >/tmp/cluster-sh-apt-update.log 2>&1 || true
    apt-get install -y --no-install-recommends $missing >/tmp/cluster-sh-apt.log 2>&1 \
      || { [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -20 /tmp/cluster-sh-apt.log >&2; die "apt-get install failed (see /tmp/cluster-sh-apt.log)"; }
  fi
  if [ $created_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  log "packages installed"
}

# ================================================================ users
ensure_users() {
  getent group "$ADMIN_GROUP" >/dev/null || groupadd "$ADMIN_GROUP"
  local u
  for u in $TEST_USERS; do id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"; done
  for u in $ADMIN_USERS; do
    id "$u" >/dev/null 2>&1 || continue
    id -nG "$u" | tr ' ' '\n' | grep -qx "$ADMIN_GROUP" || usermod -aG "$ADMIN_GROUP" "$u"
  done
}

# ================================================================ munge
start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged 9>&-
  wait_for 15 munge bash -c 'munge -n | unmunge'
}

# ================================================================ MariaDB + slurmdbd
start_mariadb() {
  install -d -o mysql -g root /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/tmp/cluster-sh-mariadb-install.log 2>&1 \
    || die "mariadb-install-db failed (see /tmp/cluster-sh-mariadb-install.log)"
  if ! alive /run/mysqld/mysqld.pid; then
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid --socket=/run/mysqld/mysqld.sock \
      --bind-address=127.0.0.1 --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
      >/var/log/mariadbd.out 2>&1 </dev/null 9>&- &
  fi
  wait_for 60 mariadb mariadb-admin --socket=/run/mysqld/mysqld.sock ping
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

write_slurmdbd_conf() {
  cat > $ETC/slurmdbd.conf <<EOF
# generated by tests/slurm/cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DBPASS
EOF
  chmod 600 $ETC/slurmdbd.conf
}

ensure_associations() {
  local want="$CLUSTER research root $TEST_USERS" stamp=$STAMP_DIR/associations
  [ -f $stamp ] && [ "$(cat $stamp)" = "$want" ] && return 0
  sacctmgr -n show cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -n show account research format=account | grep -qw research \
    || sacctmgr -i add account research Description=research Organization=nomade >/dev/null
  local u
  for u in root $TEST_USERS; do
    sacctmgr -n show assoc where user="$u" account=research cluster="$CLUSTER" format=user | grep -qw "$u" \
      || sacctmgr -i add user "$u" Account=research DefaultAccount=research Cluster="$CLUSTER" >/dev/null
  done
  echo "$want" > $stamp
}

# ================================================================ slurm.conf
use_cgroup() {
  local mode=${NOMADE_SLURM_CGROUP:-auto}
  [ "$mode" = yes ] && return 0
  [ "$mode" = no ] && return 1
  [ -d /sys/fs/cgroup/memory ] && mkdir /sys/fs/cgroup/memory/.nomade_probe 2>/dev/null \
    && rmdir /sys/fs/cgroup/memory/.nomade_probe
}

node_hw() { # prints "CPUS MEM" (cached: slurmd -C takes ~0.3 s)
  local cache=$STAMP_DIR/node_hw
  if [ ! -s $cache ]; then
    slurmd -C | awk '/^NodeName/ {for(i=1;i<=NF;i++){split($i,a,"="); v[a[1]]=a[2]}; print v["CPUs"], v["RealMemory"]}' > $cache
  fi
  cat $cache
}

hook_line() { # hook_line KEY PATH : emit KEY=PATH after checking the file is usable
  local key=$1 path=$2
  [ -z "$path" ] && return 0
  [ -f "$path" ] || die "$key: $path does not exist"
  [ -x "$path" ] || [ "$key" = MailProg ] || die "$key: $path is not executable (chmod +x it)"
  echo "$key=$path"
}

write_slurm_conf() { # writes $ETC/slurm.conf.new
  local cpus mem cg=0
  read -r cpus mem < <(node_hw)
  mem=$(( mem * 90 / 100 ))
  [ "${NOMADE_SLURM_CPUS:-8}" -gt "$cpus" ] && cpus=${NOMADE_SLURM_CPUS:-8}
  use_cgroup && cg=1
  {
    cat <<EOF
# generated by tests/slurm/cluster.sh - do not edit, set NOMADE_SLURM_* knobs and re-run 'cluster.sh up'
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${NOMADE_SLURM_DEFMEMPERCPU:-500}
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=30
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.txt
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
EOF
    if [ $cg = 1 ]; then
      echo "ProctrackType=proctrack/cgroup"; echo "TaskPlugin=task/cgroup"
    else
      echo "ProctrackType=proctrack/linuxproc"; echo "TaskPlugin=task/none"; echo "JobAcctGatherParams=OverMemoryKill"
    fi
    [ -n "${NOMADE_SLURM_JOB_SUBMIT_LUA:-}" ] && echo "JobSubmitPlugins=lua"
    if [ -n "${NOMADE_SLURM_PROLOG:-}" ]; then hook_line Prolog "$NOMADE_SLURM_PROLOG"; echo "PrologFlags=Alloc"; fi
    hook_line Epilog "${NOMADE_SLURM_EPILOG:-}"
    hook_line TaskProlog "${NOMADE_SLURM_TASKPROLOG:-}"
    hook_line TaskEpilog "${NOMADE_SLURM_TASKEPILOG:-}"
    hook_line PrologSlurmctld "${NOMADE_SLURM_PROLOG_CTLD:-}"
    hook_line EpilogSlurmctld "${NOMADE_SLURM_EPILOG_CTLD:-}"
    hook_line MailProg "${NOMADE_SLURM_MAILPROG:-}"
    [ -n "${NOMADE_SLURM_EXTRA_CONF:-}" ] && printf '%b\n' "$NOMADE_SLURM_EXTRA_CONF"
    echo "SlurmdParameters=config_overrides"
    echo "NodeName=$NODE CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN"
    echo "PartitionName=debug Nodes=$NODE Default=YES MaxTime=${NOMADE_SLURM_MAXTIME:-1-00:00:00} State=UP"
  } > $ETC/slurm.conf.new
  cat > $ETC/cgroup.conf <<'EOF'
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
  echo $cg
}

install_job_submit_lua() { # prints 1 when job_submit.lua changed
  local src=${NOMADE_SLURM_JOB_SUBMIT_LUA:-} f
  for f in ${NOMADE_SLURM_JOB_SUBMIT_FILES:-}; do install -m 644 "$f" "$ETC/$(basename "$f")"; done
  if [ -z "$src" ]; then echo 0; return; fi
  [ -f "$src" ] || die "NOMADE_SLURM_JOB_SUBMIT_LUA: $src does not exist"
  if cmp -s "$src" $ETC/job_submit.lua; then echo 0; return; fi
  # job_submit/lua reloads only when mtime > time of the last load (1 s resolution)
  sleep 1.1; install -m 644 "$src" $ETC/job_submit.lua; echo 1
}

stop_pid() { # stop_pid NAME PIDFILE
  local name=$1 pf=$2 pid i
  [ -s "$pf" ] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "$name still alive after 30 s: SIGKILL $pid"; kill -9 "$pid"; fi
    log "$name stopped (pid $pid)"
  fi
  rm -f "$pf"
}

# ================================================================ commands
cmd_up() {
  [ "$(id -u)" = 0 ] || die "cluster.sh up must run as root"
  install -d -m 755 $STAMP_DIR
  ensure_packages
  getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >> /etc/hosts
  ensure_users
  start_munge
  install -d -o slurm -g slurm /var/log/slurm /var/spool/slurmctld /var/spool/slurmd 2>/dev/null \
    || install -d /var/log/slurm /var/spool/slurmctld /var/spool/slurmd
  local fresh=0
  alive /run/slurmctld.pid || fresh=1
  start_mariadb
  write_slurmdbd_conf
  local cg lua_changed conf_changed=1
  cg=$(write_slurm_conf)
  lua_changed=$(install_job_submit_lua)
  cmp -s $ETC/slurm.conf.new $ETC/slurm.conf && conf_changed=0
  mv $ETC/slurm.conf.new $ETC/slurm.conf
  alive /run/slurmdbd.pid || slurmdbd 9>&-
  wait_for 60 slurmdbd sacctmgr -n show cluster
  ensure_associations
  if [ $conf_changed = 1 ] && alive /run/slurmctld.pid; then
    # a job still completing when slurmctld stops cannot report its end, and slurmd then drains
    # the node with "Kill task failed": let completing jobs finish first
    settle_completing 90
    log "slurm.conf changed: restarting slurmctld and slurmd"
    stop_pid slurmctld /run/slurmctld.pid
    stop_pid slurmd /run/slurmd.pid
  fi
  alive /run/slurmctld.pid || slurmctld 9>&-
  wait_for 30 slurmctld scontrol ping
  alive /run/slurmd.pid || slurmd 9>&-
  [ "$lua_changed" = 1 ] && [ $conf_changed = 0 ] && log "job_submit.lua replaced (reloaded on next submit)"
  # a job recovered in the completing state may still drain the node once slurmd is back: wait
  # for it, then clear a drain/down left by it or by saved state from an earlier run
  wait_for 60 "slurmd on $NODE responding" bash -c "sinfo -h -n $NODE -o %T | grep -vq '[*]'"
  settle_completing 90
  case "$(node_state)" in drain*|down*|fail*)
    log "node $NODE was $(node_state) ($(sinfo -h -n "$NODE" -o %E)): resuming"
    scontrol update nodename="$NODE" state=resume 2>/dev/null || true;; esac
  # "idle*" (not responding) is not ready: no job would start there
  wait_for 60 "node $NODE idle/allocated" bash -c "sinfo -h -n $NODE -o %T | grep -Eq '^(idle|mixed|allocated|completing)$'"
  if [ "${NOMADE_SLURM_SMOKE:-1}" = 1 ] && [ $fresh = 1 ]; then
    local jid
    jid=$(cd /tmp && sbatch --parsable -J cluster_sh_smoke -o /dev/null --wrap true) || die "smoke sbatch failed"
    wait_for 60 "sacct record of smoke job $jid" bash -c "sacct -n -X -P -j $jid -o State | grep -q COMPLETED"
    log "smoke job $jid COMPLETED"
  fi
  log "up: cluster=$CLUSTER node=$NODE cgroup=$cg ($(el) s)"
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "cluster.sh down must run as root"
  stop_pid slurmd /run/slurmd.pid
  stop_pid slurmctld /run/slurmctld.pid
  stop_pid slurmdbd /run/slurmdbd.pid
  stop_pid mariadbd /run/mysqld/mysqld.pid
  stop_pid munged /run/munge/munged.pid
  if [ "${1:-}" = --purge ]; then
    rm -rf /var/spool/slurmctld /var/spool/slurmd /var/log/slurm/*.log /var/log/slurm/jobcomp.txt \
      /var/lib/mysql $STAMP_DIR $ETC/slurm.conf $ETC/job_submit.lua
    log "purged Slurm state, logs, stamps and /var/lib/mysql"
  fi
}

cmd_status() {
  local rc=0 n pf
  for n in munged:/run/munge/munged.pid mariadbd:/run/mysqld/mysqld.pid slurmdbd:/run/slurmdbd.pid \
           slurmctld:/run/slurmctld.pid slurmd:/run/slurmd.pid; do
    pf=${n#*:}
    if alive "$pf"; then echo "${n%%:*}: running (pid $(cat "$pf"))"; else echo "${n%%:*}: not running"; rc=1; fi
  done
  if scontrol ping >/dev/null 2>&1; then echo "node $NODE: $(node_state)"; else echo "slurmctld: not answering"; rc=1; fi
  return $rc
}

# the lock fd is closed (9>&-) for every daemon started, so they do not keep holding it
lock() { exec 9>/run/nomade-test-cluster.flock; flock -w 300 9 || die "another cluster.sh holds /run/nomade-test-cluster.flock"; }
case "${1:-}" in
  up) lock; cmd_up ;;
  down) shift; lock; cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up | down [--purge] | status" >&2; exit 2 ;;
esac
