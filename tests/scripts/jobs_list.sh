# covers: jobs/jobs -p/wait see only the script's own background jobs; kill %1; $! matches jobs -p
sleep 5 &
p=$!
jobs -p | wc -l
[[ $(jobs -p) == "$p" ]] && echo "jobs -p is \$!"
kill %1
wait $p; echo "killed job status $?"
jobs | wc -l
wait; echo "wait with no jobs $?"
