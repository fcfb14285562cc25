# covers: the time keyword with a fixed TIMEFORMAT (no numbers), on a pipeline and a function
TIMEFORMAT='timed'
time ls -d . > /dev/null
time { seq 3 | wc -l; }
f() { echo in-f; }
time f
