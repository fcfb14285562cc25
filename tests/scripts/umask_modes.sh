# covers: umask affecting modes of files and dirs created by redirections and external commands
umask 077
echo private > private.txt
mkdir privdir
umask 022
touch public.txt
mkdir pubdir
umask
(umask 000; touch open.txt)
umask -S
stat -c '%a %n' private.txt public.txt open.txt privdir pubdir
