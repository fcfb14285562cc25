# covers: pipes into while-read (loop runs in a subshell), lastpipe, loop output into a pipe
count=0
seq 5 | while read -r n; do count=$((count + n)); echo "partial $count"; done
echo "after pipe: $count"
shopt -s lastpipe
seq 5 | while read -r n; do count=$((count + n)); done
echo "with lastpipe: $count"
printf 'b\na\nc\n' | while read -r x; do echo "item $x"; done | sort
ls -1 / | head -3 | while read -r d; do [[ -n $d ]] && echo ok; done
