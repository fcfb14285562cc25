# covers: declare -f / declare -F / type / compgen listing the script's functions and variable names
f() { ls -d . > /dev/null; echo "f body"; }
g() { f; }
declare -f f
type g
declare -F
compgen -A function
compgen -v | grep -v -E '^(BASH_REMATCH|COLUMNS|LINES)$' | tr '\n' ' '; echo
alias | wc -l
