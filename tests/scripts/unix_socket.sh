# covers: a named unix socket created by a command (bind makes a file, which a command speculated ahead of it must see), then removed
sleep 0.1
perl -MSocket -e 'socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die; bind($s, sockaddr_un("sock")) or die "bind: $!"'
[ -S sock ] && echo socket
rm sock && echo removed
ls
