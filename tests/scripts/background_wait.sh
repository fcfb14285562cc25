# covers: background jobs, $!, wait for all, wait PID and its exit status, jobs writing files
(sleep 0.1; echo slow > slow.txt) &
p1=$!
(exit 7) &
p2=$!
echo fast > fast.txt &
wait $p2; echo "p2 status $?"
wait $p1; echo "p1 status $?"
wait
cat slow.txt fast.txt
[[ $p1 =~ ^[0-9]+$ ]] && echo "pid ok"
sleep 0.05 &
wait -n; echo "wait -n $?"
