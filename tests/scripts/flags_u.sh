# covers: -u given as a command-line flag, with arguments
# flags: -u
# args: first
echo "1=$1"
echo "2=$2"
echo never
