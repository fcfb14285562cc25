# covers: external commands writing to fds set up by exec (3>&1, stdout swapped to a file and back)
exec 3>&1
exec > out.txt
/bin/echo "into file"
ls -d .
/bin/echo "to saved stdout" >&3
exec 1>&3 3>&-
/bin/echo "stdout restored"
cat out.txt
