# covers: return N, bare return ($? of last command), return inside loops, return from sourced file
f() { return 42; }
f; echo "f=$?"
g() { ls missing 2>/dev/null; return; }
g; echo "g=$?"
h() { for i in 1 2 3; do if [ $i = 2 ]; then return $i; fi; echo "h loop $i"; done; }
h; echo "h=$?"
printf 'echo sourced; return 6; echo never\n' > lib.sh
. ./lib.sh; echo "source=$?"
k() { true; }
k; echo "k=$?"
