# covers: script on stdin through a pipe with -s; commands in the script that read stdin get script text
# invoke: stdin-s
# stdin-pipe: yes
# args: only
echo "arg $1"
read -r next
echo "read: $next"
seq 3 | while read -r n; do echo "n=$n"; done
