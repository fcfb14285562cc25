# covers: arrays filled from command substitution and mapfile, used in loops running external commands
# setup: printf 'l1\nl2 with space\nl3\n' > lines.txt
mapfile -t lines < lines.txt
echo "${#lines[@]} lines"
for l in "${lines[@]}"; do echo "$l" | wc -c; done
files=($(ls))
echo "files: ${files[*]}"
readarray -t nums < <(seq 3)
echo "sum $(( nums[0] + nums[1] + nums[2] ))"
declare -a out=()
for i in "${!lines[@]}"; do out+=("$i:${lines[i]}"); done
printf '%s\n' "${out[@]}" > joined.txt
cat joined.txt
