# covers: aliases in a script (expand_aliases), alias defined on one line and used on the next
shopt -s expand_aliases
alias greet='echo hello'
alias ll='ls -1'
greet world
touch f1 f2
ll
unalias greet
greet 2>/dev/null || echo "alias removed: $?"
