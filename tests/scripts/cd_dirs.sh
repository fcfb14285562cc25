# covers: cd: relative, .., -, OLDPWD, pushd/popd, external commands writing in the new directory
mkdir -p a/b/c
cd a/b
echo "pwd: ${PWD##*/}"
touch here.txt
cd ..
ls
cd - > /dev/null
echo "back: ${PWD##*/} old: ${OLDPWD##*/}"
cd c && pwd > ../../where.txt
cd "$OLDPWD"
pushd c > /dev/null; echo "pushed ${PWD##*/}"; popd > /dev/null
echo "popped ${PWD##*/}"
cd /nonexistent 2>&1 | sed 's/^.*cd:/cd:/'
cd missing-dir; echo "cd status $?"
