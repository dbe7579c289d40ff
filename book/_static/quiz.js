// Self-check quizzes (the {quiz} directive, book/_ext/quiz.py): each answer becomes a
// button; choosing one marks it right or wrong and shows why. No kernel, nothing fetched.
"use strict";

function chooseAnswer(quiz, answer) {
  const right = answer.classList.contains("quiz-correct");
  answer.classList.add("quiz-chosen", right ? "quiz-right" : "quiz-wrong");
  answer.querySelector(".quiz-verdict").textContent = right ? "Right." : "Not quite.";
  answer.querySelector(".quiz-why").hidden = false;
  answer.querySelector(".quiz-choice").setAttribute("aria-pressed", "true");
  if (right) quiz.classList.add("quiz-solved");
}

function prepareQuiz(quiz) {
  if (quiz.classList.contains("quiz-ready")) return; // the script may be loaded twice
  quiz.querySelectorAll(".quiz-answer").forEach((answer) => {
    const choice = answer.querySelector(".quiz-choice");
    const why = answer.querySelector(".quiz-why");
    const verdict = document.createElement("p");
    verdict.className = "quiz-verdict";
    verdict.setAttribute("aria-live", "polite");
    why.prepend(verdict);
    why.hidden = true;
    choice.setAttribute("role", "button");
    choice.setAttribute("tabindex", "0");
    choice.setAttribute("aria-pressed", "false");
    choice.addEventListener("click", () => chooseAnswer(quiz, answer));
    choice.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        chooseAnswer(quiz, answer);
      }
    });
  });
  quiz.classList.add("quiz-ready");
}

function prepareQuizzes() {
  document.querySelectorAll("div.quiz").forEach(prepareQuiz);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", prepareQuizzes);
} else {
  prepareQuizzes();
}
