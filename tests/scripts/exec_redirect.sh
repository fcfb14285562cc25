# covers: exec redirections: whole-script stdout/stderr to files, fds 3/4 opened, written, closed
exec 3> fd3.txt
echo to-three >&3
ls >&3
exec 3>&-
echo "closed: $(echo x >&3 2>&1 | wc -l)" 2>/dev/null
exec 4>> log.txt
for i in 1 2 3; do echo "line $i" >&4; done
exec 4>&-
exec 5< log.txt
read -r first <&5
echo "first=$first"
exec 5<&-
exec 2> err.txt
ls missing
exec > out.txt
echo now-in-file
cat fd3.txt
