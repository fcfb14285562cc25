# covers: BASH_SOURCE, LINENO, FUNCNAME, BASH_LINENO, caller in top level, functions and sourced files
echo "line $LINENO"
echo "source ${BASH_SOURCE[0]##*/}"
f() {
    echo "f at line $LINENO, called from ${BASH_LINENO[0]}, ${FUNCNAME[0]} <- ${FUNCNAME[1]}"
}
f
printf 'echo "lib line $LINENO ${BASH_SOURCE[0]}"\n' > lib.sh
source ./lib.sh
echo $LINENO \
  continued $LINENO
if true; then
    echo "in if $LINENO"
fi
ls missing 2>&1 | sed 's/.*No such/No such/'
nosuchcommand_xyz
