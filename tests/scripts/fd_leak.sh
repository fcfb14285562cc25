# covers: the file descriptors an external command inherits (no extra fds leak to children)
ls /proc/self/fd | sort -n | tr '\n' ' '; echo
bash -c 'ls /proc/$$/fd' | sort -n | tr '\n' ' '; echo
exec 7> seven.txt
ls /proc/self/fd | sort -n | tr '\n' ' '; echo
