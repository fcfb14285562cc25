# covers: the command hash table (hits per command) after external commands ran, hash -r, type -P
ls -d . > /dev/null
ls -d . > /dev/null
cat /dev/null
hash
hash -r
hash 2>&1
type -P ls
