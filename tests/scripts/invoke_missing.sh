# covers: a script path that does not exist: bash's "No such file or directory" message and status 127
# invoke: missing
# args: a b
echo this file is not run, its name is replaced by no-such-script.sh
