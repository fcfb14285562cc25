# covers: the file descriptors an external command inherits (no extra fds leak to children)
ls /proc/self/fd | sort -n | tr '\n' ' '; echo
bash -c 'ls /proc/$$/fd' | sort -n | tr '\n' ' '; echo
# The shell's own fds (no pipeline: its pipes would be open while ls lists them).
ls /proc/$$/fd > shell-fds.txt
sort -n shell-fds.txt | tr '\n' ' '; echo
exec 7> seven.txt
ls /proc/self/fd | sort -n | tr '\n' ' '; echo
