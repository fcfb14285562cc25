# covers: -c 'string' with no name: $0 is the shell's own, no args, error messages prefixed as bash does
# invoke: c
echo "#=$#"
echo "0 is ${0##*/}"
nosuch_command_here
