# covers: the full exported environment children see, SHLVL, $BASH, BASH_EXECUTION_STRING unset
env | grep -v '^_=' | sort
echo "SHLVL=$SHLVL BASH=$BASH"
echo "exec string: ${BASH_EXECUTION_STRING-unset}"
export NEWVAR=1
env | grep -c .
